// Live updates of one conversation over its WebSocket: replies from any client (another
// tab, an API script) arrive as the same events as the SSE stream.
import { useEffect, useRef, useState } from "react";
import { api, unwrap } from "../api/client";
import { toChatEvent, type ChatEvent } from "./sse";

export type SocketStatus = "connecting" | "live" | "offline";

/**
 * The socket's address with a fresh one-time ticket: a browser cannot set headers on a
 * WebSocket, and the access token stays out of URLs (which servers and proxies log). The
 * ticket request carries the session and the organisation like any API call (and refreshes
 * an expired token first).
 */
export async function socketUrl(conversationId: string, after: string | null): Promise<string> {
  const { ticket } = await unwrap(
    api.POST("/v1/conversations/{conversation_id}/ws-ticket", {
      params: { path: { conversation_id: conversationId } },
    }),
  );
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const params = new URLSearchParams({ ticket });
  if (after) params.set("after", after);
  return `${scheme}//${window.location.host}/v1/conversations/${encodeURIComponent(conversationId)}/ws?${params}`;
}

/**
 * Keeps a socket open while the conversation is shown, reconnecting with backoff and
 * asking for what it missed (`after` = the last message seen).
 */
export function useConversationSocket(
  conversationId: string,
  onEvent: (event: ChatEvent) => void,
  lastMessageId: () => string | null,
): SocketStatus {
  const [status, setStatus] = useState<SocketStatus>("connecting");
  const handler = useRef(onEvent);
  handler.current = onEvent;
  const last = useRef(lastMessageId);
  last.current = lastMessageId;

  useEffect(() => {
    let socket: WebSocket | null = null;
    let closed = false;
    let attempts = 0;
    let timer: number | undefined;
    let ping: number | undefined;

    const retry = () => {
      setStatus("offline");
      attempts += 1;
      if (attempts > 8) return;
      timer = window.setTimeout(() => void connect(), Math.min(15_000, 500 * 2 ** attempts));
    };

    // Every attempt, the first and each reconnect, asks for a new ticket.
    const connect = async () => {
      if (closed) return;
      setStatus("connecting");
      let url: string;
      try {
        url = await socketUrl(conversationId, last.current());
      } catch {
        if (!closed) retry();
        return;
      }
      if (closed) return;
      const ws = new WebSocket(url);
      socket = ws;
      ws.onmessage = (message) => {
        if (typeof message.data !== "string") return;
        if (message.data.includes('"ready"')) {
          attempts = 0;
          setStatus("live");
          return;
        }
        const event = toChatEvent(message.data);
        if (event) handler.current(event);
      };
      ws.onopen = () => {
        ping = window.setInterval(() => ws.readyState === WebSocket.OPEN && ws.send('{"type":"ping"}'), 25_000);
      };
      ws.onclose = () => {
        window.clearInterval(ping);
        if (!closed) retry();
      };
    };

    void connect();
    return () => {
      closed = true;
      window.clearTimeout(timer);
      window.clearInterval(ping);
      socket?.close();
    };
  }, [conversationId]);

  return status;
}
