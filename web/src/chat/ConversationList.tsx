import { useEffect, useState } from "react";
import { NavLink, useNavigate } from "react-router";
import { useConversations, useDeleteConversation, useUpdateConversation } from "../api/hooks";
import type { Conversation } from "../api/types";
import { ErrorMessage } from "../components/ErrorMessage";
import { Loading } from "../components/Loading";

function useDebounced<T>(value: T, ms: number): T {
  const [current, setCurrent] = useState(value);
  useEffect(() => {
    const t = window.setTimeout(() => setCurrent(value), ms);
    return () => window.clearTimeout(t);
  }, [value, ms]);
  return current;
}

function ConversationRow({ conversation, active }: { conversation: Conversation; active: boolean }) {
  const [renaming, setRenaming] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [title, setTitle] = useState(conversation.title ?? "");
  const update = useUpdateConversation();
  const remove = useDeleteConversation();
  const navigate = useNavigate();
  const name = conversation.title || "Untitled";
  if (renaming) {
    return (
      <li>
        <form
          className="rename"
          onSubmit={(e) => {
            e.preventDefault();
            update.mutate({ id: conversation.id, title: title.trim() }, { onSuccess: () => setRenaming(false) });
          }}
        >
          <label htmlFor={`title-${conversation.id}`} className="visually-hidden">
            Title
          </label>
          <input id={`title-${conversation.id}`} value={title} autoFocus maxLength={200}
            onChange={(e) => setTitle(e.target.value)} onKeyDown={(e) => e.key === "Escape" && setRenaming(false)} />
          <button type="submit" disabled={update.isPending}>Save</button>
          <button type="button" className="button-secondary" onClick={() => setRenaming(false)}>Cancel</button>
          {update.error != null && <ErrorMessage error={update.error} compact />}
        </form>
      </li>
    );
  }
  return (
    <li className={active ? "conversation active" : "conversation"}>
      <NavLink to={`/chat/${conversation.id}`} title={name}>
        {name}
      </NavLink>
      <div className="row-actions">
        <button type="button" className="icon-button" aria-label={`Rename ${name}`} onClick={() => setRenaming(true)}>
          ✎
        </button>
        {confirming ? (
          <button
            type="button"
            className="button-danger small"
            onClick={() =>
              remove.mutate(conversation.id, {
                onSuccess: () => {
                  if (active) navigate("/chat");
                },
              })
            }
            onBlur={() => setConfirming(false)}
          >
            Delete?
          </button>
        ) : (
          <button type="button" className="icon-button" aria-label={`Delete ${name}`} onClick={() => setConfirming(true)}>
            ✕
          </button>
        )}
      </div>
      {remove.error != null && <ErrorMessage error={remove.error} compact />}
    </li>
  );
}

export function ConversationList({ activeId, onNew }: { activeId?: string; onNew: () => void }) {
  const [search, setSearch] = useState("");
  const q = useDebounced(search.trim(), 250);
  const list = useConversations(q);
  return (
    <div className="conversations">
      <button type="button" onClick={onNew} className="new-chat">
        New conversation
      </button>
      <div className="search">
        <label htmlFor="conversation-search" className="visually-hidden">
          Search conversations
        </label>
        <input id="conversation-search" type="search" placeholder="Search…" value={search}
          onChange={(e) => setSearch(e.target.value)} />
      </div>
      {list.isPending ? (
        <Loading />
      ) : list.error ? (
        <ErrorMessage error={list.error} compact onRetry={() => void list.refetch()} />
      ) : list.data.data.length === 0 ? (
        <p className="muted">{q ? "No conversation matches." : "No conversations yet."}</p>
      ) : (
        <ul aria-label="Conversations">
          {list.data.data.map((c) => (
            <ConversationRow key={c.id} conversation={c} active={c.id === activeId} />
          ))}
        </ul>
      )}
    </div>
  );
}
