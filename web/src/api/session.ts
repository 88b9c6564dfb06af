// The signed-in session: the access token lives only in memory; the refresh token is an
// httpOnly cookie the browser sends to /v1/auth/* and scripts cannot read.
import type { TokenResponse, User } from "./types";

export interface SessionState {
  accessToken: string | null;
  user: User | null;
  /** false until the first cookie refresh has been tried */
  ready: boolean;
}

type Listener = (state: SessionState) => void;

let state: SessionState = { accessToken: null, user: null, ready: false };
const listeners = new Set<Listener>();

export function getSession(): SessionState {
  return state;
}

export function subscribeSession(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function set(next: Partial<SessionState>): void {
  state = { ...state, ...next };
  for (const l of listeners) l(state);
}

// Whether this browser has signed in (so a refresh cookie may exist). It spares a visitor
// who never signed in a refresh call bound to fail.
const SIGNED_IN = "parley.signedIn";

function remember(signedIn: boolean): void {
  try {
    if (signedIn) localStorage.setItem(SIGNED_IN, "1");
    else localStorage.removeItem(SIGNED_IN);
  } catch {
    // storage unavailable: refresh every time
  }
}

function mayHaveSession(): boolean {
  try {
    return localStorage.getItem(SIGNED_IN) === "1";
  } catch {
    return true;
  }
}

export function setTokens(tokens: TokenResponse): void {
  remember(true);
  set({ accessToken: tokens.access_token, user: tokens.user, ready: true });
}

export function setUser(user: User): void {
  set({ user });
}

export function clearSession(): void {
  remember(false);
  set({ accessToken: null, user: null, ready: true });
}

/** At page load: resume the session the refresh cookie holds, if this browser has one. */
export function resumeSession(): Promise<boolean> {
  if (!mayHaveSession()) {
    set({ ready: true });
    return Promise.resolve(false);
  }
  return refreshSession();
}

let inflight: Promise<boolean> | null = null;

async function refreshOnce(): Promise<boolean> {
  const response = await fetch("/v1/auth/refresh", {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json" },
    body: "{}",
  });
  if (!response.ok) {
    clearSession();
    return false;
  }
  setTokens((await response.json()) as TokenResponse);
  return true;
}

/**
 * Swaps the refresh cookie for a new access token. Calls share one request in a tab, and
 * tabs take turns (Web Locks): refresh tokens rotate, and presenting a spent one ends the
 * session everywhere.
 */
export function refreshSession(): Promise<boolean> {
  if (!inflight) {
    const run = async (): Promise<boolean> => {
      try {
        return await refreshOnce();
      } catch {
        set({ ready: true });
        return false;
      }
    };
    const locks = typeof navigator !== "undefined" ? navigator.locks : undefined;
    const pending: Promise<boolean> = locks ? (locks.request("parley-refresh", run) as unknown as Promise<boolean>) : run();
    inflight = pending.finally(() => {
      inflight = null;
    });
  }
  return inflight!;
}
