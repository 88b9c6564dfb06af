// fetch with the session: the bearer token, the organisation acted in, and one retry
// after a refresh when the access token has expired.
import { ApiError, errorFromResponse } from "./errors";
import { getSession, refreshSession } from "./session";

let currentOrg: string | null = null;

export function setCurrentOrg(orgId: string | null): void {
  currentOrg = orgId;
}

export function getCurrentOrg(): string | null {
  return currentOrg;
}

function isAuthPath(url: string): boolean {
  return new URL(url, window.location.origin).pathname.startsWith("/v1/auth/");
}

function withSession(request: Request): Request {
  const headers = new Headers(request.headers);
  const token = getSession().accessToken;
  if (token && !headers.has("authorization")) headers.set("authorization", `Bearer ${token}`);
  if (currentOrg && !headers.has("parley-organization")) headers.set("parley-organization", currentOrg);
  return new Request(request, { headers, credentials: "same-origin" });
}

/** fetch, signed in; a 401 refreshes the session once and retries. */
export async function authFetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
  const absolute = typeof input === "string" ? new URL(input, window.location.origin) : input;
  const request = new Request(absolute, init);
  if (isAuthPath(request.url)) return fetch(new Request(request, { credentials: "same-origin" }));
  const spare = request.clone();
  const response = await fetch(withSession(request));
  if (response.status !== 401) return response;
  if (!(await refreshSession())) return response;
  return fetch(withSession(spare));
}

/** authFetch that throws an ApiError for any non-2xx answer. */
export async function request(input: string, init?: RequestInit): Promise<Response> {
  let response: Response;
  try {
    response = await authFetch(input, init);
  } catch (cause) {
    if (cause instanceof DOMException && cause.name === "AbortError") throw cause;
    throw new ApiError(0, { message: "Parley could not be reached." });
  }
  if (!response.ok) throw await errorFromResponse(response);
  return response;
}
