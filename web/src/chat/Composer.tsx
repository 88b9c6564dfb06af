import { useRef, useState, type KeyboardEvent } from "react";

interface Props {
  onSend: (content: string) => void;
  onStop: () => void;
  streaming: boolean;
  disabled?: boolean;
}

/** Enter sends, Shift+Enter starts a new line; while a reply streams, Stop replaces Send. */
export function Composer({ onSend, onStop, streaming, disabled }: Props) {
  const [text, setText] = useState("");
  const area = useRef<HTMLTextAreaElement>(null);
  const send = () => {
    const content = text.trim();
    if (!content || streaming || disabled) return;
    onSend(content);
    setText("");
    area.current?.focus();
  };
  const onKeyDown = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      send();
    }
  };
  return (
    <form
      className="composer"
      onSubmit={(e) => {
        e.preventDefault();
        send();
      }}
    >
      <label htmlFor="composer-input" className="visually-hidden">
        Message
      </label>
      <textarea
        id="composer-input"
        ref={area}
        rows={1}
        placeholder="Message Parley…"
        value={text}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={onKeyDown}
        disabled={disabled}
      />
      {streaming ? (
        <button type="button" className="button-danger" onClick={onStop}>
          Stop
        </button>
      ) : (
        <button type="submit" disabled={disabled || !text.trim()}>
          Send
        </button>
      )}
    </form>
  );
}
