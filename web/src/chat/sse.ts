// Server-sent events (text/event-stream), read incrementally from a fetch body, and the
// conversation stream's events on top of them.
import type { Message } from "../api/types";

export interface SSEMessage {
  event: string;
  data: string;
  id?: string;
}

/** Feeds text as it arrives; returns the events completed so far. */
export class SSEParser {
  private buffer = "";
  private event = "";
  private data: string[] = [];
  private id: string | undefined;

  push(text: string): SSEMessage[] {
    this.buffer += text;
    const out: SSEMessage[] = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (!match) break;
      // A lone \r at the end of a chunk may be the first half of \r\n: wait for more.
      if (match[0] === "\r" && match.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const done = this.line(line);
      if (done) out.push(done);
    }
    return out;
  }

  /** The stream ended: an event without its blank line is dropped, as the spec says. */
  end(): SSEMessage[] {
    this.buffer = "";
    this.data = [];
    this.event = "";
    return [];
  }

  private line(line: string): SSEMessage | null {
    if (line === "") {
      if (this.data.length === 0) {
        this.event = "";
        return null;
      }
      const message: SSEMessage = { event: this.event || "message", data: this.data.join("\n") };
      if (this.id !== undefined) message.id = this.id;
      this.event = "";
      this.data = [];
      return message;
    }
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id") this.id = value;
    return null;
  }
}

/** The events of a response body, as they arrive. */
export async function* readSSE(body: ReadableStream<Uint8Array>): AsyncGenerator<SSEMessage> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const parser = new SSEParser();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      yield* parser.push(decoder.decode(value, { stream: true }));
    }
    yield* parser.push(decoder.decode());
    parser.end();
  } finally {
    reader.releaseLock();
  }
}

export interface StreamError {
  type: string;
  code: string;
  message: string;
}

export type ChatEvent =
  | { type: "message.created"; message: Message }
  | { type: "message.delta"; message_id: string; index: number; delta: string }
  | { type: "message.completed"; message: Message }
  | { type: "error"; error: StreamError };

const KNOWN = new Set(["message.created", "message.delta", "message.completed", "error"]);

/** The chat event an SSE message (or a WebSocket frame's JSON) carries; null for others. */
export function toChatEvent(message: SSEMessage | string): ChatEvent | null {
  const data = typeof message === "string" ? message : message.data;
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    return null;
  }
  if (!parsed || typeof parsed !== "object") return null;
  const obj = parsed as { type?: unknown };
  const type = typeof obj.type === "string" ? obj.type : typeof message === "string" ? "" : message.event;
  if (!KNOWN.has(type)) return null;
  const event = { ...(parsed as object), type } as ChatEvent;
  if (event.type === "message.delta" && (typeof event.delta !== "string" || typeof event.index !== "number"))
    return null;
  if ((event.type === "message.created" || event.type === "message.completed") && !event.message?.id)
    return null;
  return event;
}

/**
 * Places a delta at its index. A delta seen twice (the SSE stream and the WebSocket both
 * carry it) changes nothing; one past a gap is appended anyway and the completed message
 * fixes the text.
 */
export function applyDelta(content: string, index: number, delta: string): string {
  if (index + delta.length <= content.length) return content;
  if (index <= content.length) return content.slice(0, index) + delta;
  return content + delta;
}
