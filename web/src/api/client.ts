// The typed client (openapi-fetch over the generated schema) with the session's fetch.
import createClient from "openapi-fetch";
import { ApiError, envelopeBody } from "./errors";
import { authFetch } from "./http";
import type { paths } from "./schema";

export const api = createClient<paths>({
  // This origin, spelled out: the same for a browser, and parseable where Request wants
  // absolute URLs (the component tests).
  baseUrl: typeof window !== "undefined" ? window.location.origin : "",
  fetch: (request: Request) => authFetch(request),
});

interface Result<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** The data of a typed call, or an ApiError with the envelope's message. */
export async function unwrap<T>(call: Promise<Result<T>>): Promise<T> {
  let result: Result<T>;
  try {
    result = await call;
  } catch {
    throw new ApiError(0, { message: "Parley could not be reached." });
  }
  const { response } = result;
  if (result.error !== undefined || !response.ok) {
    const retry = response.headers.get("retry-after");
    throw new ApiError(response.status, envelopeBody(result.error), {
      requestId: response.headers.get("x-request-id"),
      retryAfterS: retry != null ? Number(retry) : null,
    });
  }
  return result.data as T;
}
