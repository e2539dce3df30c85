import { notBuilt } from "../dom.js";

export function render() {
  return notBuilt("Webhooks", "Signed deliveries of events to your endpoints.");
}
