#!/usr/bin/env node
// What `kubectl port-forward service/wapi :80` reaches in tests: a small
// HTTP server on a free 127.0.0.1 port, announced the way kubectl does
// ("Forwarding from 127.0.0.1:PORT -> 3000"), answering the routes
// `deploy.sh smoke` uses like wapi would. Run by tests/deploy/kubectl-stub.
// Behaviour from the environment: STUB_HEALTHZ / STUB_READYZ / STUB_SIGNIN
// (status codes), STUB_EMAIL, STUB_PASSWORD, STUB_API_KEY (the credentials it
// accepts); /readyz also fails while $STUB_STATE/bad exists (a bad revision).
// Each request is logged to $STUB_STATE/http.log without credentials.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const S = process.env.STUB_STATE;
const env = (k, d) => process.env[k] || d;
const COOKIE = '__Secure-better-auth.session_token';
const TOKEN = 'stub-session-token.c2lnbmF0dXJl';
const log = (line) => fs.appendFileSync(path.join(S, 'http.log'), `${line}\n`);
const json = (res, code, obj, headers = {}) => {
  res.writeHead(code, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(obj));
};

const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    const cookie = req.headers.cookie || '';
    const signedIn = cookie.includes(`${COOKIE}=${TOKEN}`);
    const key = req.headers['x-api-key'];
    log(`${req.method} ${req.url}${signedIn ? ' cookie' : ''}${key ? ' api-key' : ''}` +
      `${req.headers.origin ? ` origin=${req.headers.origin}` : ''}`);
    const route = `${req.method} ${req.url}`;
    if (route === 'GET /healthz') {
      json(res, Number(env('STUB_HEALTHZ', 200)), { status: 'ok' });
    } else if (route === 'GET /readyz') {
      const bad = fs.existsSync(path.join(S, 'bad')) || env('STUB_READYZ', '200') !== '200';
      if (bad) {
        json(res, Number(env('STUB_READYZ', 503)) === 200 ? 503 : Number(env('STUB_READYZ', 503)),
          { status: 'unavailable', reason: 'database: connection refused', checks: { database: 'fail', supervisor: 'ok' } });
      } else json(res, 200, { status: 'ready', checks: { database: 'ok', supervisor: 'ok' } });
    } else if (route === 'POST /api/auth/sign-in/email') {
      let b = {};
      try { b = JSON.parse(body); } catch { json(res, 400, { code: 'INVALID_JSON', message: 'body is not JSON' }); return; }
      log(`  sign-in body keys: ${Object.keys(b).sort().join(',')}`);
      const forced = env('STUB_SIGNIN', '');
      if (forced) json(res, Number(forced), { code: 'INTERNAL_ERROR', message: 'forced by STUB_SIGNIN' });
      else if (b.email === process.env.STUB_EMAIL && b.password === process.env.STUB_PASSWORD) {
        log('  sign-in accepted');
        json(res, 200, { redirect: false, token: 'stub', user: { id: 'u1', role: 'admin' } },
          { 'set-cookie': `${COOKIE}=${TOKEN}; Max-Age=604800; Path=/; HttpOnly; Secure; SameSite=Lax` });
      } else json(res, 401, { code: 'INVALID_EMAIL_OR_PASSWORD', message: 'Invalid email or password' });
    } else if (route === 'GET /api/me') {
      if (key) {
        if (key === process.env.STUB_API_KEY) json(res, 200, { userId: 'u2', role: 'member', via: 'api_key' });
        else json(res, 401, { code: 'INVALID_API_KEY', message: 'Invalid API key' });
      } else if (signedIn) json(res, 200, { userId: 'u1', role: 'admin', via: 'session' });
      else json(res, 401, { code: 'UNAUTHORIZED', message: 'sign in, or send an API key' });
    } else if (route === 'POST /api/auth/sign-out') {
      if (signedIn && req.headers.origin === 'https://wapi.example.test') json(res, 200, { success: true });
      else json(res, 403, { code: 'INVALID_ORIGIN', message: 'Invalid origin' });
    } else json(res, 404, { code: 'not_found', message: 'no such route' });
  });
});
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  console.log(`Forwarding from 127.0.0.1:${port} -> 3000`);
});
process.on('SIGTERM', () => process.exit(0));
