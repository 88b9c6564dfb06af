// Sign up, log in and out. The refresh token never reaches scripts: the server sets it
// as an httpOnly cookie, and logout clears it.
import { api, unwrap } from "./client";
import { clearSession, setTokens } from "./session";

export async function signUp(body: { email: string; password: string; name?: string }): Promise<void> {
  setTokens(await unwrap(api.POST("/v1/auth/register", { body })));
}

export async function logIn(body: { email: string; password: string }): Promise<void> {
  setTokens(await unwrap(api.POST("/v1/auth/login", { body })));
}

export async function logOut(): Promise<void> {
  try {
    await fetch("/v1/auth/logout", {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
  } finally {
    clearSession();
  }
}
