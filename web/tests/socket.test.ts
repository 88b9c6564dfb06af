import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { setCurrentOrg } from "../src/api/http";
import { clearSession, setTokens } from "../src/api/session";
import { socketUrl } from "../src/chat/socket";

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

describe("socketUrl", () => {
  const calls: Request[] = [];
  beforeEach(() => {
    calls.length = 0;
    setTokens({
      access_token: "secret-access-token",
      token_type: "bearer",
      expires_in: 900,
      refresh_token: "rt",
      refresh_token_expires_in: 100,
      user: { object: "user", id: "usr_1", email: "a@example.com", name: "A", default_org_id: "org_1", created_at: "" },
    });
    setCurrentOrg("org_9");
  });
  afterEach(() => {
    vi.unstubAllGlobals();
    clearSession();
  });

  it("connects with a fresh one-time ticket, never the access token", async () => {
    let issued = 0;
    vi.stubGlobal(
      "fetch",
      vi.fn(async (input: Request) => {
        calls.push(input);
        issued += 1;
        return json(201, { object: "conversation.ws_ticket", ticket: `tk${issued}`, expires_in: 30, expires_at: "" });
      }),
    );
    const first = new URL(await socketUrl("conv_1", null));
    const again = new URL(await socketUrl("conv_1", "msg_7"));

    expect(calls.map((c) => [c.method, new URL(c.url).pathname])).toEqual([
      ["POST", "/v1/conversations/conv_1/ws-ticket"],
      ["POST", "/v1/conversations/conv_1/ws-ticket"],
    ]);
    expect(calls[0]!.headers.get("authorization")).toBe("Bearer secret-access-token");
    expect(calls[0]!.headers.get("parley-organization")).toBe("org_9");
    expect(first.protocol).toBe("ws:");
    expect(first.pathname).toBe("/v1/conversations/conv_1/ws");
    expect(Object.fromEntries(first.searchParams)).toEqual({ ticket: "tk1" });
    expect(Object.fromEntries(again.searchParams)).toEqual({ ticket: "tk2", after: "msg_7" });
    expect(first.href).not.toContain("secret-access-token");
  });

  it("fails like any API call when no ticket is given", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async () =>
        json(404, { error: { type: "not_found_error", code: "conversation_not_found", message: "No conversation.", param: null } }),
      ),
    );
    await expect(socketUrl("conv_gone", null)).rejects.toMatchObject({ status: 404 });
  });
});
