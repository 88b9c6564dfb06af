// One place that turns what the API answered (its error envelope, or no answer at all)
// into what the user reads.
import type { ErrorBody } from "./types";

export class ApiError extends Error {
  readonly status: number;
  readonly type: string;
  readonly code: string;
  readonly param: string | null;
  readonly requestId: string | null;
  /** When a 429 may be retried (from Retry-After), if the server said. */
  readonly retryAt: Date | null;

  constructor(
    status: number,
    body: Partial<ErrorBody>,
    opts: { requestId?: string | null; retryAfterS?: number | null; now?: Date } = {},
  ) {
    super(body.message || `The server answered ${status}.`);
    this.name = "ApiError";
    this.status = status;
    this.type = body.type ?? "api_error";
    this.code = body.code ?? "unknown";
    this.param = body.param ?? null;
    this.requestId = opts.requestId ?? null;
    const now = opts.now ?? new Date();
    this.retryAt =
      opts.retryAfterS != null && Number.isFinite(opts.retryAfterS)
        ? new Date(now.getTime() + opts.retryAfterS * 1000)
        : null;
  }

  get isQuota(): boolean {
    return this.status === 429;
  }
}

/** Reads an error response (envelope or not) into an ApiError. */
export async function errorFromResponse(response: Response): Promise<ApiError> {
  let body: Partial<ErrorBody> = {};
  try {
    body = envelopeBody(await response.json());
  } catch {
    // not JSON: keep the generic message
  }
  const retry = response.headers.get("retry-after");
  return new ApiError(response.status, body, {
    requestId: response.headers.get("x-request-id"),
    retryAfterS: retry != null ? Number(retry) : null,
  });
}

/** The `error` member of an envelope, or nothing when the body is something else. */
export function envelopeBody(envelope: unknown): Partial<ErrorBody> {
  if (envelope && typeof envelope === "object" && "error" in envelope) {
    const inner = (envelope as { error: unknown }).error;
    if (inner && typeof inner === "object") return inner as Partial<ErrorBody>;
  }
  return {};
}

/** Field name of an error's `param` ("body.email" and "email" both name "email"). */
export function fieldOf(error: unknown): string | null {
  if (!(error instanceof ApiError) || !error.param) return null;
  const parts = error.param.split(".");
  return parts[parts.length - 1] ?? null;
}

/** The error for one form field, if the API blamed that field. */
export function fieldError(error: unknown, field: string): string | null {
  if (fieldOf(error) !== field || !(error instanceof ApiError)) return null;
  // Beside the field, "email: value is not..." needs no field name.
  const text = error.message.replace(new RegExp(`^(body\\.)?${field}: `), "");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** A time today, or a date and time further off. */
export function formatWhen(date: Date, now: Date = new Date()): string {
  const time = date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  if (date.toDateString() === now.toDateString()) return time;
  const day = date.toLocaleDateString(undefined, { month: "short", day: "numeric", year: "numeric" });
  return `${day}, ${time}`;
}

/** What the user reads for any error. */
export function friendlyMessage(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.status === 0) return "Parley could not be reached. Check your connection and try again.";
    if (error.status === 429) {
      const when = error.retryAt ? ` You can try again at ${formatWhen(error.retryAt)}.` : "";
      return `${error.message}${when}`;
    }
    if (error.status >= 500) {
      return `${error.message} (Something went wrong on the server${
        error.requestId ? `; request ${error.requestId}` : ""
      }.)`;
    }
    return error.message;
  }
  if (error instanceof TypeError) return "Parley could not be reached. Check your connection and try again.";
  if (error instanceof Error) return error.message;
  return "Something went wrong.";
}

export function errorTitle(error: unknown): string {
  if (!(error instanceof ApiError)) return "Something went wrong";
  if (error.status === 429) return error.code.startsWith("rate_") ? "Slow down" : "Limit reached";
  if (error.status === 401) return "Please sign in";
  if (error.status === 403) return "Not allowed";
  if (error.status === 404) return "Not found";
  if (error.status === 400 || error.status === 422) return "Check your input";
  if (error.status === 409) return "Conflict";
  return "Something went wrong";
}
