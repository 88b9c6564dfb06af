import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { authFetch, setCurrentOrg } from "../src/api/http";
import { clearSession, getSession, setTokens } from "../src/api/session";
import type { TokenResponse } from "../src/api/types";

function tokens(access: string): TokenResponse {
  return {
    access_token: access,
    token_type: "bearer",
    expires_in: 900,
    refresh_token: "rt_hidden",
    refresh_token_expires_in: 100,
    user: { object: "user", id: "usr_1", email: "a@example.com", name: "A", default_org_id: "org_1", created_at: "" },
  };
}

/** What fetch was asked, as a Request (the app passes Requests and plain paths). */
function asRequest(input: RequestInfo | URL, init?: RequestInit): Request {
  return input instanceof Request ? input : new Request(new URL(String(input), window.location.origin), init);
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

describe("authFetch", () => {
  const calls: Request[] = [];
  beforeEach(() => {
    calls.length = 0;
    setTokens(tokens("old"));
    setCurrentOrg("org_9");
  });
  afterEach(() => {
    vi.unstubAllGlobals();
    clearSession();
  });

  it("sends the token and organisation, refreshes once on 401 and retries", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async (info: RequestInfo | URL, init?: RequestInit) => {
        const input = asRequest(info, init);
        calls.push(input);
        const path = new URL(input.url).pathname;
        if (path === "/v1/auth/refresh") return json(200, tokens("new"));
        return input.headers.get("authorization") === "Bearer new" ? json(200, { ok: true }) : json(401, {});
      }),
    );
    const response = await authFetch("/v1/conversations", { method: "POST", body: '{"title":"x"}' });
    expect(response.status).toBe(200);
    expect(calls.map((c) => new URL(c.url).pathname)).toEqual([
      "/v1/conversations",
      "/v1/auth/refresh",
      "/v1/conversations",
    ]);
    expect(calls[0]!.headers.get("parley-organization")).toBe("org_9");
    expect(calls[1]!.credentials).toBe("same-origin");
    expect(await calls[2]!.text()).toBe('{"title":"x"}');
    expect(getSession().accessToken).toBe("new");
  });

  it("a failed refresh signs out and returns the 401", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async (info: RequestInfo | URL, init?: RequestInit) => {
        calls.push(asRequest(info, init));
        return json(401, { error: { type: "authentication_error", code: "invalid_refresh_token", message: "x" } });
      }),
    );
    const response = await authFetch("/v1/users/me");
    expect(response.status).toBe(401);
    expect(calls).toHaveLength(2);
    expect(getSession()).toMatchObject({ accessToken: null, user: null, ready: true });
  });
});
