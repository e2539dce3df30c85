// The WhatsApp session page (QR code, pairing code, connection state).
// Not built yet: this module is its place; it exports render(ctx).
import { notBuilt } from "../dom.js";

export function render() {
  return notBuilt("Session", "Link a WhatsApp account and watch its connection.");
}
