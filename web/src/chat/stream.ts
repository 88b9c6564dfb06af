// Sending to a conversation: POST with stream=true, and the events as they come.
import { ApiError } from "../api/errors";
import { request } from "../api/http";
import type { Exchange } from "../api/types";
import { readSSE, toChatEvent, type ChatEvent } from "./sse";

export type ChatAction =
  | { kind: "send"; content: string; model?: string | null }
  | { kind: "regenerate"; messageId: string; model?: string | null }
  | { kind: "edit"; messageId: string; content: string; model?: string | null };

function target(conversationId: string, action: ChatAction): { url: string; body: object } {
  const base = `/v1/conversations/${encodeURIComponent(conversationId)}/messages`;
  const model = action.model ? { model: action.model } : {};
  switch (action.kind) {
    case "send":
      return { url: base, body: { content: action.content, stream: true, ...model } };
    case "regenerate":
      return { url: `${base}/${encodeURIComponent(action.messageId)}/regenerate`, body: { stream: true, ...model } };
    case "edit":
      return {
        url: `${base}/${encodeURIComponent(action.messageId)}/edit`,
        body: { content: action.content, stream: true, ...model },
      };
  }
}

/**
 * Runs the action and hands each event to `onEvent` until the reply is complete. Errors
 * before the stream starts throw an ApiError; an `error` event is passed on, then thrown.
 */
export async function streamChat(
  conversationId: string,
  action: ChatAction,
  onEvent: (event: ChatEvent) => void,
  signal?: AbortSignal,
): Promise<void> {
  const { url, body } = target(conversationId, action);
  const init: RequestInit = {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream" },
    body: JSON.stringify(body),
  };
  if (signal) init.signal = signal;
  const response = await request(url, init);
  const type = response.headers.get("content-type") ?? "";
  if (!type.includes("text/event-stream") || !response.body) {
    // A server that answered in one piece.
    const exchange = (await response.json()) as Exchange;
    onEvent({ type: "message.created", message: exchange.user_message });
    onEvent({ type: "message.completed", message: exchange.assistant_message });
    return;
  }
  for await (const message of readSSE(response.body)) {
    const event = toChatEvent(message);
    if (!event) continue;
    onEvent(event);
    if (event.type === "error") {
      throw new ApiError(502, { type: event.error.type, code: event.error.code, message: event.error.message });
    }
  }
}

export async function cancelReply(conversationId: string): Promise<void> {
  await request(`/v1/conversations/${encodeURIComponent(conversationId)}/cancel`, { method: "POST" });
}
