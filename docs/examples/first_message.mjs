#!/usr/bin/env node
// wapi's first message in Node.js (18 or later; fetch is built in): listens for
// webhooks, registers itself as one, sends a text, then prints every event it
// receives until a message.received arrives (or 120 s pass).
//
//   WAPI_URL=http://localhost:8080 WAPI_API_KEY=... TO=15551234567 node first_message.mjs
//
// HOOK_PORT is the port to listen on (default 8090) and HOOK_URL the address
// wapi can reach it at (default http://127.0.0.1:HOOK_PORT/hook). wapi refuses
// webhooks to private addresses unless webhooks.allow_private is set.
import http from "node:http";

const base = process.env.WAPI_URL || "http://localhost:8080";
const key = process.env.WAPI_API_KEY;
const to = process.env.TO;
const port = Number(process.env.HOOK_PORT || 8090);
const hookUrl = process.env.HOOK_URL || `http://127.0.0.1:${port}/hook`;

async function api(method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: { "x-api-key": key, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await res.json().catch(() => null);
  // Every error is {"error": {"code", "message", "field"?}}.
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${data?.error?.code}: ${data?.error?.message}`);
  return data;
}

// 1. Receive: a small HTTP server for the webhook deliveries (each a POST of
//    {id, type, at, data}; answer 2xx, or wapi retries).
const done = new Promise((resolve) => {
  http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      res.writeHead(204).end();
      const event = JSON.parse(body);
      console.log(JSON.stringify({ event: event.type, data: event.data }));
      if (event.type === "message.received") resolve(event);
    });
  }).listen(port, "127.0.0.1");
});

// 2. Register it (the answer's secret signs every delivery: Standard Webhooks).
const hook = await api("POST", "/api/webhooks", { url: hookUrl, events: ["message.received", "message.sent", "message.status"] });
console.log(JSON.stringify({ webhook: hook.id }));

// 3. Send a text; the answer is the queued message with its WhatsApp id.
const msg = await api("POST", "/api/messages", { to, text: "Hello from wapi (Node.js)" });
console.log(JSON.stringify({ sent: msg.id, status: msg.status }));

// 4. Wait for a reply, then clean up.
const timer = setTimeout(() => {
  console.error("no message.received within 120 s");
  process.exit(1);
}, 120000);
const reply = await done;
clearTimeout(timer);
console.log(JSON.stringify({ reply: reply.data.text, from: reply.data.chat_jid }));
await api("DELETE", `/api/webhooks/${hook.id}`);
process.exit(0);
