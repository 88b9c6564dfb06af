import { useQueryClient } from "@tanstack/react-query";
import { useCallback, useEffect, useRef, useState } from "react";
import { keys, useConversation, useMessages, useUpdateConversation } from "../api/hooks";
import type { Message } from "../api/types";
import { ErrorMessage } from "../components/ErrorMessage";
import { Loading } from "../components/Loading";
import { Composer } from "./Composer";
import { MessageItem } from "./MessageItem";
import { ModelPicker } from "./ModelPicker";
import { takePendingFirst } from "./pending";
import { useConversationSocket } from "./socket";
import type { ChatEvent } from "./sse";
import { cancelReply, streamChat, type ChatAction } from "./stream";
import { applyEvent, isStreaming } from "./thread";

const SOCKET_LABEL = { live: "Live", connecting: "Connecting", offline: "Offline" } as const;

export function ChatView({ conversationId }: { conversationId: string }) {
  const qc = useQueryClient();
  const conversation = useConversation(conversationId);
  const stored = useMessages(conversationId);
  const update = useUpdateConversation();
  const [thread, setThread] = useState<Message[]>([]);
  const [sending, setSending] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [model, setModel] = useState<string | null>(null);
  const abort = useRef<AbortController | null>(null);
  const threadRef = useRef(thread);
  threadRef.current = thread;
  const listRef = useRef<HTMLOListElement>(null);
  const pinned = useRef(true);

  // The stored branch replaces ours whenever it is fetched and nothing of ours is in flight.
  useEffect(() => {
    if (stored.data && !sending) setThread(stored.data);
  }, [stored.data]); // not on `sending`: the stream's end must not roll back to stale data

  useEffect(() => {
    if (conversation.data?.model && model === null) setModel(conversation.data.model);
  }, [conversation.data, model]);

  const refreshStored = useCallback(() => {
    void qc.invalidateQueries({ queryKey: keys.messages(conversationId) });
    void qc.invalidateQueries({ queryKey: keys.conversation(conversationId) });
    void qc.invalidateQueries({ queryKey: keys.allConversations() });
    void qc.invalidateQueries({ queryKey: keys.usageSummary() });
  }, [qc, conversationId]);

  const onEvent = useCallback(
    (event: ChatEvent) => {
      setThread((t) => applyEvent(t, event));
      if (event.type === "message.completed" && event.message.role === "assistant") refreshStored();
    },
    [refreshStored],
  );

  const socket = useConversationSocket(conversationId, onEvent, () => threadRef.current.at(-1)?.id ?? null);

  const run = useCallback(
    async (action: ChatAction) => {
      setError(null);
      setSending(true);
      const controller = new AbortController();
      abort.current = controller;
      try {
        await streamChat(conversationId, action, onEvent, controller.signal);
      } catch (e) {
        if (!(e instanceof DOMException && e.name === "AbortError")) setError(e);
      } finally {
        abort.current = null;
        setSending(false);
        refreshStored();
      }
    },
    [conversationId, onEvent, refreshStored],
  );

  // A conversation created a moment ago with its first message.
  useEffect(() => {
    const first = takePendingFirst(conversationId);
    if (first) void run({ kind: "send", content: first.content, model: first.model });
  }, [conversationId, run]);

  // Follow the reply as it grows, unless the reader has scrolled up.
  useEffect(() => {
    const list = listRef.current;
    if (list && pinned.current) list.scrollTop = list.scrollHeight;
  }, [thread, error]);

  const streaming = sending || isStreaming(thread);

  const stop = async () => {
    try {
      await cancelReply(conversationId);
    } catch (e) {
      setError(e);
    }
    // If the server does not end the stream soon, stop listening.
    const pending = abort.current;
    window.setTimeout(() => pending?.abort(), 3000);
  };

  if (conversation.isPending || stored.isPending) return <Loading label="Loading conversation…" />;
  if (conversation.error) return <ErrorMessage error={conversation.error} onRetry={() => void conversation.refetch()} />;
  if (stored.error) return <ErrorMessage error={stored.error} onRetry={() => void stored.refetch()} />;

  return (
    <section className="chat" aria-label="Conversation">
      <div className="chat-header">
        <h1 className="chat-title">{conversation.data.title || "New conversation"}</h1>
        <ModelPicker
          value={model}
          onChange={(m) => {
            setModel(m);
            update.mutate({ id: conversationId, model: m });
          }}
        />
        <span className={`live live-${socket}`} role="status" aria-label={`Live updates: ${SOCKET_LABEL[socket]}`}>
          {SOCKET_LABEL[socket]}
        </span>
      </div>
      <ol
        className="messages"
        aria-live="polite"
        aria-label="Messages"
        ref={listRef}
        onScroll={(e) => {
          const el = e.currentTarget;
          pinned.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
        }}
      >
        {thread.length === 0 && <li className="empty muted">Say hello to start.</li>}
        {thread.map((m) => (
          <MessageItem
            key={m.id}
            message={m}
            busy={streaming}
            onEdit={(msg, content) => void run({ kind: "edit", messageId: msg.id, content, model })}
            onRegenerate={(msg) => void run({ kind: "regenerate", messageId: msg.id, model })}
            onSwitch={(id) => update.mutate({ id: conversationId, current_leaf_id: id })}
          />
        ))}
      </ol>
      {(error || update.error) && <ErrorMessage error={error ?? update.error} />}
      <Composer
        streaming={streaming}
        onStop={() => void stop()}
        onSend={(content) => void run({ kind: "send", content, model })}
      />
    </section>
  );
}
