import { memo, useState } from "react";
import type { Message } from "../api/types";
import { CopyButton } from "../components/CopyButton";
import { Markdown } from "../components/Markdown";

interface Props {
  message: Message;
  busy: boolean;
  onEdit: (message: Message, content: string) => void;
  onRegenerate: (message: Message) => void;
  onSwitch: (siblingId: string) => void;
}

function BranchNav({ message, onSwitch, busy }: Pick<Props, "message" | "onSwitch" | "busy">) {
  const siblings = message.sibling_ids ?? [];
  if (siblings.length < 2) return null;
  const i = siblings.indexOf(message.id);
  const prev = siblings[i - 1];
  const next = siblings[i + 1];
  return (
    <div className="branch-nav" role="group" aria-label="Versions">
      <button type="button" className="icon-button" aria-label="Previous version" disabled={!prev || busy}
        onClick={() => prev && onSwitch(prev)}>
        ‹
      </button>
      <span aria-live="polite">
        {i + 1} / {siblings.length}
      </span>
      <button type="button" className="icon-button" aria-label="Next version" disabled={!next || busy}
        onClick={() => next && onSwitch(next)}>
        ›
      </button>
    </div>
  );
}

function EditForm({ message, onDone, onEdit }: { message: Message; onDone: () => void; onEdit: Props["onEdit"] }) {
  const [text, setText] = useState(message.content);
  return (
    <form
      className="edit-form"
      onSubmit={(e) => {
        e.preventDefault();
        if (!text.trim()) return;
        onEdit(message, text.trim());
        onDone();
      }}
    >
      <label htmlFor={`edit-${message.id}`} className="visually-hidden">
        Edit message
      </label>
      <textarea id={`edit-${message.id}`} value={text} onChange={(e) => setText(e.target.value)} autoFocus
        onKeyDown={(e) => e.key === "Escape" && onDone()} />
      <div className="row">
        <button type="submit">Save and send</button>
        <button type="button" className="button-secondary" onClick={onDone}>
          Cancel
        </button>
      </div>
    </form>
  );
}

const STATUS_NOTE: Record<string, string> = {
  cancelled: "Stopped",
  incomplete: "Incomplete",
};

export const MessageItem = memo(function MessageItem({ message, busy, onEdit, onRegenerate, onSwitch }: Props) {
  const [editing, setEditing] = useState(false);
  const mine = message.role === "user";
  const streaming = message.status === "streaming";
  return (
    <li className={`message message-${message.role}`} aria-busy={streaming || undefined}>
      <div className="message-meta">
        <span className="message-author">{mine ? "You" : message.role === "assistant" ? "Parley" : "System"}</span>
        {message.model && !mine && <span className="muted">{message.model}</span>}
        {STATUS_NOTE[message.status] && <span className="badge">{STATUS_NOTE[message.status]}</span>}
      </div>
      {editing ? (
        <EditForm message={message} onDone={() => setEditing(false)} onEdit={onEdit} />
      ) : (
        <div className="message-body">
          {mine ? <p className="plain">{message.content}</p> : <Markdown source={message.content} />}
          {streaming && <span className="cursor" aria-label="Parley is typing" />}
        </div>
      )}
      {!editing && (
        <div className="message-actions">
          <BranchNav message={message} onSwitch={onSwitch} busy={busy} />
          {!streaming && message.content && <CopyButton text={message.content} />}
          {mine && !busy && (
            <button type="button" className="button-secondary" onClick={() => setEditing(true)}>
              Edit
            </button>
          )}
          {message.role === "assistant" && !busy && !streaming && (
            <button type="button" className="button-secondary" onClick={() => onRegenerate(message)}>
              Regenerate
            </button>
          )}
        </div>
      )}
    </li>
  );
});
