// The conversation's current branch, as the stream's events change it.
import type { Message } from "../api/types";
import { applyDelta, type ChatEvent } from "./sse";

/** The branch with `message` placed after its parent (what followed the parent is cut). */
function place(messages: Message[], message: Message): Message[] {
  const existing = messages.findIndex((m) => m.id === message.id);
  if (existing !== -1) {
    const copy = messages.slice();
    copy[existing] = message;
    return copy;
  }
  const parent = message.parent_id == null ? -1 : messages.findIndex((m) => m.id === message.parent_id);
  if (message.parent_id != null && parent === -1) return [...messages, message];
  const kept = messages.slice(0, parent + 1);
  // The parent now has one more child; the new message's siblings are the truth.
  return [...kept, message];
}

export function applyEvent(messages: Message[], event: ChatEvent): Message[] {
  switch (event.type) {
    case "message.created":
    case "message.completed":
      return place(messages, event.message);
    case "message.delta": {
      const i = messages.findIndex((m) => m.id === event.message_id);
      if (i === -1) return messages;
      const copy = messages.slice();
      const current = copy[i]!;
      copy[i] = { ...current, content: applyDelta(current.content, event.index, event.delta) };
      return copy;
    }
    default:
      return messages;
  }
}

export function isStreaming(messages: Message[]): boolean {
  return messages.some((m) => m.status === "streaming");
}
