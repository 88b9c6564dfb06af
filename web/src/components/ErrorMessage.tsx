import { ApiError, errorTitle, friendlyMessage } from "../api/errors";

interface Props {
  error: unknown;
  onRetry?: () => void;
  /** a one-line version, for inside forms and lists */
  compact?: boolean;
}

/** How every error reads: what went wrong, how to go on, and the request id for support. */
export function ErrorMessage({ error, onRetry, compact }: Props) {
  if (!error) return null;
  const requestId = error instanceof ApiError ? error.requestId : null;
  return (
    <div role="alert" className={compact ? "error error-compact" : "error"}>
      {!compact && <strong className="error-title">{errorTitle(error)}</strong>}
      <span className="error-message">{friendlyMessage(error)}</span>
      {requestId && !compact && <small className="error-id">Request {requestId}</small>}
      {onRetry && (
        <button type="button" className="button-secondary" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}
