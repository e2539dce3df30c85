// Verifies webhook deliveries with the published `standardwebhooks` package.
// stdin: JSON [{secret, headers: {"webhook-id", "webhook-timestamp", "webhook-signature"}, body}]
// stdout: JSON [{ok: true, payload} | {ok: false, error}] in the same order.
import { Webhook } from "standardwebhooks";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = JSON.parse(input).map(({ secret, headers, body }) => {
  try {
    const payload = new Webhook(secret).verify(body, headers);
    return { ok: true, payload };
  } catch (e) {
    return { ok: false, error: String(e && e.message ? e.message : e) };
  }
});
process.stdout.write(JSON.stringify(out));
