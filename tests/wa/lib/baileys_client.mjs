// Test-only helpers to run an unmodified Baileys client against the fake
// server: an in-memory auth state (serialisable, to simulate a restart), a quiet
// logger, and a wrapper that records connection updates.
import makeWASocket, { initAuthCreds, Browsers, BufferJSON } from 'baileys';

/** In-memory auth state; `serialize()` gives JSON that `restoreAuth` turns back into one. */
export function memoryAuth(creds = initAuthCreds(), data = {}) {
    const keys = {
        async get(type, ids) {
            const out = {};
            for (const id of ids) if (data[type]?.[id] !== undefined) out[id] = data[type][id];
            return out;
        },
        async set(update) {
            for (const [type, m] of Object.entries(update)) {
                data[type] ??= {};
                for (const [id, v] of Object.entries(m)) {
                    if (v == null) delete data[type][id];
                    else data[type][id] = v;
                }
            }
        }
    };
    return { creds, keys, data, serialize: () => JSON.stringify({ creds, keys: data }, BufferJSON.replacer) };
}

export function restoreAuth(json) {
    const { creds, keys } = JSON.parse(json, BufferJSON.reviver);
    return memoryAuth(creds, keys);
}

/** A pino-shaped logger that keeps warnings and errors (printed with WA_DEBUG=1). */
export function quietLogger(tag = 'baileys') {
    const lines = [];
    const debug = !!process.env.WA_DEBUG;
    const keep = (lvl) => (...a) => {
        const text = a.map((x) => (typeof x === 'string' ? x : JSON.stringify(x, (k, v) => (typeof v === 'bigint' ? String(v) : v))?.slice(0, 400))).join(' ');
        lines.push(`${lvl} ${text}`);
        if (debug) process.stderr.write(`[${tag}] ${lvl} ${text}\n`);
    };
    const l = {
        level: debug ? 'debug' : 'warn',
        lines,
        child: () => l,
        trace() {},
        debug: debug ? keep('debug') : () => {},
        info: debug ? keep('info') : () => {},
        warn: keep('warn'),
        error: keep('error'),
        fatal: keep('fatal')
    };
    return l;
}

export const closeCode = (u) => u?.lastDisconnect?.error?.output?.statusCode ?? null;

/**
 * Starts a Baileys socket on `url` with `auth`. Returns { sock, updates, next(pred, ms), end() }.
 * `next` resolves with the first connection update (past or future) for which pred holds.
 */
export function startBaileys({ url, auth, version, logger = quietLogger(), ...extra }) {
    const updates = [];
    const waiters = new Set();
    const sock = makeWASocket({
        waWebSocketUrl: url,
        auth: { creds: auth.creds, keys: auth.keys },
        logger,
        version: version.split('.').map(Number),
        browser: Browsers.ubuntu('Chrome'),
        connectTimeoutMs: 8000,
        markOnlineOnConnect: false,
        fireInitQueries: false,
        syncFullHistory: false,
        shouldSyncHistoryMessage: () => false,
        generateHighQualityLinkPreview: false,
        ...extra
    });
    sock.ev.on('connection.update', (u) => {
        updates.push(u);
        for (const w of [...waiters]) if (w.pred(u)) w.resolve(u);
    });
    const next = (pred, ms = 10000, what = 'connection update') => {
        const hit = updates.find(pred);
        if (hit) return Promise.resolve(hit);
        return new Promise((resolve, reject) => {
            const w = {
                pred,
                resolve: (u) => {
                    clearTimeout(t);
                    waiters.delete(w);
                    resolve(u);
                }
            };
            const t = setTimeout(() => {
                waiters.delete(w);
                reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
            }, ms);
            waiters.add(w);
        });
    };
    const closed = () => updates.some((u) => u.connection === 'close');
    return {
        sock,
        updates,
        logger,
        next,
        closed,
        waitClose: (ms = 10000) => next((u) => u.connection === 'close', ms, 'connection close'),
        waitOpen: (ms = 10000) => next((u) => u.connection === 'open' || u.connection === 'close', ms, 'connection open'),
        end: async () => {
            if (!closed()) {
                sock.end(undefined);
                await next((u) => u.connection === 'close', 3000).catch(() => {});
            }
        }
    };
}
