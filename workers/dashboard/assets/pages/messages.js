import { notBuilt } from "../dom.js";

export function render() {
  return notBuilt("Messages", "Chats, sent and received messages.");
}
