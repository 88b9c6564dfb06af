import { describe, expect, it } from "vitest";
import { applyDelta, readSSE, SSEParser, toChatEvent, type SSEMessage } from "../src/chat/sse";
import { applyEvent } from "../src/chat/thread";
import type { Message } from "../src/api/types";

function message(over: Partial<Message>): Message {
  return {
    object: "conversation.message",
    id: "msg_1",
    conversation_id: "conv_1",
    parent_id: null,
    role: "user",
    content: "",
    model: null,
    prompt_tokens: 0,
    completion_tokens: 0,
    cost_micros: 0,
    latency_ms: null,
    status: "complete",
    created_at: "2026-01-01T00:00:00Z",
    sibling_ids: [],
    ...over,
  } as Message;
}

function stream(chunks: (string | Uint8Array)[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const c of chunks) controller.enqueue(typeof c === "string" ? encoder.encode(c) : c);
      controller.close();
    },
  });
}

async function collect(body: ReadableStream<Uint8Array>): Promise<SSEMessage[]> {
  const out: SSEMessage[] = [];
  for await (const m of readSSE(body)) out.push(m);
  return out;
}

describe("SSEParser", () => {
  it("reads events split anywhere across chunks", () => {
    const text =
      'event: message.created\ndata: {"type":"message.created"}\n\n' +
      'event: message.delta\ndata: {"type":"message.delta","index":0,"delta":"Hi"}\n\n';
    for (let cut = 0; cut <= text.length; cut++) {
      const parser = new SSEParser();
      const events = [...parser.push(text.slice(0, cut)), ...parser.push(text.slice(cut))];
      expect(events.map((e) => e.event)).toEqual(["message.created", "message.delta"]);
      expect(JSON.parse(events[1]!.data).delta).toBe("Hi");
    }
  });

  it("handles CRLF, a CR split from its LF, comments, multi-line data and ids", () => {
    const parser = new SSEParser();
    const events = [
      ...parser.push(": keep-alive\r\nid: 7\r\nevent: x\r"),
      ...parser.push("\ndata: line one\r\ndata:line two\r\n\r\n"),
      ...parser.push("data: plain\n\n"),
    ];
    expect(events).toEqual([
      { event: "x", data: "line one\nline two", id: "7" },
      { event: "message", data: "plain", id: "7" },
    ]);
  });

  it("drops an event cut off by the end of the stream and ignores empty events", () => {
    const parser = new SSEParser();
    expect(parser.push("event: ping\n\n")).toEqual([]);
    expect(parser.push("data: half")).toEqual([]);
    expect(parser.end()).toEqual([]);
  });
});

describe("readSSE", () => {
  it("decodes UTF-8 split inside a character", async () => {
    const bytes = new TextEncoder().encode('data: {"delta":"héllo 🌍"}\n\n');
    const cut = bytes.indexOf(0xf0) + 2; // inside the emoji
    const events = await collect(stream([bytes.slice(0, cut), bytes.slice(cut)]));
    expect(JSON.parse(events[0]!.data).delta).toBe("héllo 🌍");
  });
});

describe("toChatEvent", () => {
  it("parses the conversation events and rejects the rest", () => {
    const created = toChatEvent({
      event: "message.created",
      data: JSON.stringify({ type: "message.created", message: message({}) }),
    });
    expect(created?.type).toBe("message.created");
    expect(toChatEvent({ event: "message.delta", data: '{"type":"message.delta","message_id":"m","index":0,"delta":"a"}' }))
      .toEqual({ type: "message.delta", message_id: "m", index: 0, delta: "a" });
    expect(toChatEvent('{"type":"error","error":{"type":"api_error","code":"upstream","message":"boom"}}')?.type).toBe("error");
    // The SSE event name stands in for a missing type.
    expect(toChatEvent({ event: "message.delta", data: '{"message_id":"m","index":0,"delta":"a"}' })?.type).toBe("message.delta");
    expect(toChatEvent({ event: "message", data: "not json" })).toBeNull();
    expect(toChatEvent('{"type":"pong"}')).toBeNull();
    expect(toChatEvent('{"type":"message.delta","message_id":"m"}')).toBeNull();
    expect(toChatEvent('{"type":"message.created"}')).toBeNull();
  });
});

describe("applyDelta", () => {
  it("appends, ignores repeats, and survives gaps", () => {
    expect(applyDelta("", 0, "Hel")).toBe("Hel");
    expect(applyDelta("Hel", 3, "lo")).toBe("Hello");
    expect(applyDelta("Hello", 3, "lo")).toBe("Hello"); // seen twice (SSE and WebSocket)
    expect(applyDelta("Hello", 0, "Hel")).toBe("Hello");
    expect(applyDelta("Hel", 5, "!")).toBe("Hel!"); // a gap: completed fixes the text
  });
});

describe("applyEvent", () => {
  const user = message({ id: "u1", content: "Hi" });
  const reply = message({ id: "a1", parent_id: "u1", role: "assistant", status: "streaming" });

  it("builds a streamed reply", () => {
    let thread = applyEvent([], { type: "message.created", message: user });
    thread = applyEvent(thread, { type: "message.created", message: reply });
    thread = applyEvent(thread, { type: "message.delta", message_id: "a1", index: 0, delta: "Mock " });
    thread = applyEvent(thread, { type: "message.delta", message_id: "a1", index: 5, delta: "reply" });
    expect(thread.map((m) => m.content)).toEqual(["Hi", "Mock reply"]);
    thread = applyEvent(thread, {
      type: "message.completed",
      message: { ...reply, content: "Mock reply", status: "complete" },
    });
    expect(thread[1]!.status).toBe("complete");
    expect(thread).toHaveLength(2);
  });

  it("a sibling replaces the branch after its parent (regenerate and edit)", () => {
    const thread: Message[] = [user, { ...reply, status: "complete", content: "old" }];
    const regenerated = applyEvent(thread, {
      type: "message.created",
      message: message({ id: "a2", parent_id: "u1", role: "assistant", status: "streaming" }),
    });
    expect(regenerated.map((m) => m.id)).toEqual(["u1", "a2"]);
    const edited = applyEvent(thread, { type: "message.created", message: message({ id: "u2", content: "Hey" }) });
    expect(edited.map((m) => m.id)).toEqual(["u2"]);
  });

  it("ignores deltas for unknown messages", () => {
    expect(applyEvent([user], { type: "message.delta", message_id: "zzz", index: 0, delta: "x" })).toEqual([user]);
  });
});
