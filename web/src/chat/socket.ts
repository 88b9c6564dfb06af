// Live updates of one conversation over its WebSocket: replies from any client (another
// tab, an API script) arrive as the same events as the SSE stream.
import { useEffect, useRef, useState } from "react";
import { getCurrentOrg } from "../api/http";
import { getSession, refreshSession } from "../api/session";
import { toChatEvent, type ChatEvent } from "./sse";

export type SocketStatus = "connecting" | "live" | "offline";

function socketUrl(conversationId: string, after: string | null): string | null {
  const token = getSession().accessToken;
  if (!token) return null;
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const params = new URLSearchParams({ access_token: token });
  const org = getCurrentOrg();
  if (org) params.set("org", org);
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

    const connect = () => {
      const url = socketUrl(conversationId, last.current());
      if (!url || closed) return;
      setStatus("connecting");
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
      ws.onclose = async (event) => {
        window.clearInterval(ping);
        if (closed) return;
        setStatus("offline");
        attempts += 1;
        // A refused token (policy violation or an app code in 4xxx) gets a fresh one first.
        if (event.code === 1008 || (event.code >= 4000 && event.code < 5000)) await refreshSession();
        if (attempts > 8) return;
        timer = window.setTimeout(connect, Math.min(15_000, 500 * 2 ** attempts));
      };
    };

    connect();
    return () => {
      closed = true;
      window.clearTimeout(timer);
      window.clearInterval(ping);
      socket?.close();
    };
  }, [conversationId]);

  return status;
}
