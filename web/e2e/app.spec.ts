// The web app end to end, against a real Parley with the mock model: sign up, chat with a
// streamed reply (seen live in a second tab), an API key used from here, the message
// counted on the usage page, an invitation. Screenshots of every page at desktop and
// phone widths land in web/screenshots/.
import { expect, test, type Browser, type BrowserContext, type Page } from "@playwright/test";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";

const BASE = () => process.env.PARLEY_E2E_URL!;
const SHOTS = resolve(import.meta.dirname, "..", "screenshots");
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const EMAIL = `ann-${Date.now()}@example.com`;
const PASSWORD = "a long enough passphrase";

mkdirSync(SHOTS, { recursive: true });

test.describe.configure({ mode: "serial" });

let context: BrowserContext;
let page: Page;
const problems: string[] = [];

function watch(p: Page, name: string): void {
  p.on("console", (m) => {
    if (m.type() === "error") problems.push(`${name} console: ${m.text()}`);
  });
  p.on("pageerror", (e) => problems.push(`${name} page error: ${e.message}`));
}

async function shot(p: Page, name: string): Promise<void> {
  const size = p.viewportSize();
  const kind = size && size.width < 600 ? "phone" : "desktop";
  await p.screenshot({ path: join(SHOTS, `${name}-${kind}.png`), fullPage: true });
}

async function newPage(browser: Browser): Promise<void> {
  context = await browser.newContext({ baseURL: BASE(), viewport: DESKTOP });
  page = await context.newPage();
  watch(page, "tab 1");
}

test.beforeAll(async ({ browser }) => newPage(browser));
test.afterAll(async () => context?.close());

test("sign up, with field errors from the API", async () => {
  await page.goto("/");
  await expect(page).toHaveURL(/\/login$/);
  await expect(page.getByRole("heading", { name: "Log in" })).toBeVisible();
  await shot(page, "login");
  await page.getByRole("link", { name: "Create an account" }).click();
  await expect(page.getByRole("heading", { name: "Create your account" })).toBeVisible();

  // The API's 422 names the field; the message sits under it.
  await page.getByLabel("Email").fill("not-an-email");
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign up" }).click();
  await expect(page.getByLabel("Email")).toHaveAttribute("aria-invalid", "true");
  await shot(page, "signup");

  await page.getByLabel("Name").fill("Ann");
  await page.getByLabel("Email").fill(EMAIL);
  await page.getByRole("button", { name: "Sign up" }).click();
  await expect(page).toHaveURL(/\/chat$/);
  await expect(page.getByRole("heading", { name: "New conversation" })).toBeVisible();
});

test("chat: a reply streams in, and a second tab sees it live", async () => {
  const picker = page.getByLabel("Model");
  await expect(picker).toHaveValue("parley-mock");
  await shot(page, "chat-new");
  const words = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen";
  await page.getByLabel("Message", { exact: true }).fill(`Hello Parley ${words}`);
  await page.keyboard.press("Enter");
  await expect(page).toHaveURL(/\/chat\/conv_/);

  // Token by token: the Stop button is up while the reply is partial.
  const stop = page.getByRole("button", { name: "Stop" });
  await expect(stop).toBeVisible();
  const messages = page.getByRole("list", { name: "Messages" });
  await expect(messages.locator(".message-assistant")).toContainText("Mock reply");
  await expect(messages.locator(".message-assistant")).toContainText(`Mock reply: Hello Parley ${words}`);
  await expect(stop).toBeHidden();
  // The title comes from the first message, and the list shows it.
  await expect(page.getByRole("list", { name: "Conversations" }).getByRole("link")).toHaveCount(1);

  // A second tab on the same conversation, signed in from the refresh cookie. Its live
  // socket opens under the page's CSP (WebSockets to this origin only) with a one-time
  // ticket: no access token in the URL.
  const second = await context.newPage();
  watch(second, "tab 2");
  const sockets: string[] = [];
  second.on("websocket", (ws) => sockets.push(ws.url()));
  const loaded = await second.goto(page.url());
  const csp = (await loaded!.allHeaders())["content-security-policy"];
  expect(csp).toContain(`connect-src 'self' ${BASE().replace("http:", "ws:")};`);
  await expect(second.getByRole("status", { name: "Live updates: Live" })).toBeVisible();
  expect(sockets.length).toBeGreaterThan(0);
  for (const url of sockets) {
    expect(new URL(url).searchParams.get("ticket")).toBeTruthy();
    expect(url).not.toContain("access_token");
  }
  await page.getByLabel("Message", { exact: true }).fill("Second question seen elsewhere");
  await page.getByRole("button", { name: "Send" }).click();
  await expect(second.getByRole("list", { name: "Messages" })).toContainText(
    "Mock reply: Second question seen elsewhere",
  );
  await second.close();
  await shot(page, "chat");
});

test("chat: regenerate, branch navigation, edit and resend", async () => {
  const messages = page.getByRole("list", { name: "Messages" });
  const lastReply = messages.locator(".message-assistant").last();
  await lastReply.getByRole("button", { name: "Regenerate" }).click();
  await expect(lastReply.getByRole("group", { name: "Versions" })).toContainText("2 / 2");
  await lastReply.getByRole("button", { name: "Previous version" }).click();
  await expect(messages.locator(".message-assistant").last().getByRole("group", { name: "Versions" })).toContainText(
    "1 / 2",
  );

  const lastQuestion = messages.locator(".message-user").last();
  await lastQuestion.getByRole("button", { name: "Edit" }).click();
  await page.getByLabel("Edit message").fill("An edited question");
  await page.getByRole("button", { name: "Save and send" }).click();
  await expect(messages.locator(".message-assistant").last()).toContainText("Mock reply: An edited question");
  await expect(messages.locator(".message-user").last().getByRole("group", { name: "Versions" })).toContainText(
    "2 / 2",
  );
});

test("chat: stop keeps the partial reply", async () => {
  const messages = page.getByRole("list", { name: "Messages" });
  const words = Array.from({ length: 80 }, (_, i) => `word${i}`).join(" ");
  await page.getByLabel("Message", { exact: true }).fill(words);
  await page.getByLabel("Message", { exact: true }).press("Enter");
  const reply = messages.locator(".message-assistant").last();
  await expect(reply).toContainText("Mock reply: word0");
  await page.getByRole("button", { name: "Stop" }).click();
  await expect(reply).toContainText("Stopped");
  await expect(page.getByRole("button", { name: "Send" })).toBeVisible();
  await expect(reply).not.toContainText("word79");
});

test("chat: rename and search", async () => {
  const list = page.getByRole("list", { name: "Conversations" });
  await list.getByRole("button", { name: /^Rename / }).click();
  await page.getByLabel("Title").fill("Streaming demo");
  await page.keyboard.press("Enter");
  await expect(list.getByRole("link", { name: "Streaming demo" })).toBeVisible();
  await page.getByLabel("Search conversations").fill("zzz-nothing");
  await expect(page.getByText("No conversation matches.")).toBeVisible();
  await page.getByLabel("Search conversations").fill("");
  await expect(list.getByRole("link", { name: "Streaming demo" })).toBeVisible();
});

let apiKey = "";
let inviteUrl = "";

test("API keys: create, shown once, and used with /v1/chat/completions", async ({ request }) => {
  await page.getByRole("link", { name: "API keys" }).click();
  await expect(page.getByRole("heading", { name: "API keys", level: 1 })).toBeVisible();
  await page.getByLabel("Key name").fill("e2e key");
  await page.getByRole("button", { name: "Create key" }).click();
  const secret = page.getByLabel("API key secret");
  await expect(secret).toHaveText(/^sk-parley-/);
  apiKey = (await secret.textContent())!;
  await expect(page.getByRole("button", { name: "Copy key" })).toBeVisible();
  await expect(page.locator(".snippet")).toContainText(`base_url="${BASE()}/v1"`);
  await expect(page.getByRole("row", { name: /e2e key/ })).toBeVisible();
  await shot(page, "keys");

  const response = await request.post(`${BASE()}/v1/chat/completions`, {
    headers: { authorization: `Bearer ${apiKey}` },
    data: { model: "parley-mock", messages: [{ role: "user", content: "From the test" }] },
  });
  expect(response.status()).toBe(200);
  const body = await response.json();
  expect(body.choices[0].message.content).toBe("Mock reply: From the test");
});

test("usage: the key's message is counted", async () => {
  await page.getByRole("link", { name: "Usage" }).click();
  await expect(page.getByRole("heading", { name: "Usage", level: 1 })).toBeVisible();
  await expect(page.getByRole("progressbar", { name: "Messages" })).toBeVisible();
  const byKey = page.getByRole("region", { name: "By API key" });
  const row = byKey.getByRole("row", { name: /e2e key/ });
  // The ledger is written in batches (about a second): look again until it is there.
  await expect(async () => {
    await page.reload();
    await expect(row).toBeVisible({ timeout: 2000 });
  }).toPass({ timeout: 20_000 });
  await expect(row.getByRole("cell").nth(2)).toHaveText("1");
  await expect(page.getByRole("img", { name: "Messages per day" })).toBeVisible();
  const download = page.waitForEvent("download");
  await page.getByRole("button", { name: "Download CSV" }).click();
  expect((await download).suggestedFilename()).toBe("parley-usage.csv");
  await shot(page, "usage");
});

test("organisation: invite a member", async () => {
  await page.getByRole("link", { name: "Organisation" }).click();
  await expect(page.getByRole("heading", { name: "Members" })).toBeVisible();
  await expect(page.getByRole("row", { name: new RegExp(EMAIL) })).toContainText("owner");
  await page.getByLabel("Email address").fill("bob@example.com");
  await page.getByLabel("Role", { exact: true }).selectOption("admin");
  await page.getByRole("button", { name: "Send invitation" }).click();
  await expect(page.getByText("Invitation sent to bob@example.com.")).toBeVisible();
  const row = page.getByRole("row", { name: /bob@example.com/ });
  await expect(row).toContainText("admin");
  await shot(page, "organisation");
  inviteUrl = (await page.getByRole("link", { name: "Invitation link" }).getAttribute("href"))!;
  expect(inviteUrl).toContain("/invitations/accept?token=");
});

test("the invited member signs up from the link and joins", async ({ browser }) => {
  const bob = await browser.newContext({ baseURL: BASE(), viewport: DESKTOP });
  const tab = await bob.newPage();
  watch(tab, "bob");
  await tab.goto(new URL(inviteUrl).pathname + new URL(inviteUrl).search);
  await expect(tab).toHaveURL(/\/login$/);
  await tab.getByRole("link", { name: "Create an account" }).click();
  await tab.getByLabel("Name").fill("Bob");
  await tab.getByLabel("Email").fill("bob@example.com");
  await tab.getByLabel("Password").fill(PASSWORD);
  await tab.getByRole("button", { name: "Sign up" }).click();
  await expect(tab.getByRole("heading", { name: "You are invited" })).toBeVisible();
  await shot(tab, "invitation");
  await tab.getByRole("button", { name: "Accept invitation" }).click();
  await expect(tab.getByRole("heading", { name: "Ann's organisation" })).toBeVisible();
  await expect(tab.getByText("Your role: admin")).toBeVisible();
  await bob.close();

  await page.reload();
  await expect(page.getByLabel("Role of Bob")).toHaveValue("admin");
  await expect(page.getByRole("heading", { name: "Pending invitations" })).toBeVisible();
  await expect(page.getByText("No pending invitations.")).toBeVisible();
});

test("organisation: create another and switch between them", async () => {
  await page.getByRole("button", { name: "Create" }).click();
  await expect(page.getByLabel("Organisation name")).toHaveAttribute("aria-invalid", "true");
  await page.getByLabel("Organisation name").fill("Second team");
  await page.getByRole("button", { name: "Create" }).click();
  await expect(page.getByRole("heading", { name: "Second team" })).toBeVisible();
  await expect(page.getByText("Your role: owner")).toBeVisible();
  await expect(page.getByRole("row", { name: /Bob/ })).toHaveCount(0);
  await page.getByLabel("Switch organisation").selectOption({ label: "Ann's organisation" });
  await expect(page.getByRole("heading", { name: "Ann's organisation" })).toBeVisible();
  await expect(page.getByLabel("Role of Bob")).toHaveValue("admin");
});

test("plan: the current plan beside the others", async () => {
  await page.getByRole("link", { name: "Plan" }).click();
  await expect(page.getByText("Current plan")).toBeVisible();
  await expect(page.locator(".plan")).not.toHaveCount(1);
  await shot(page, "plan");
});

test("chat: a reached message cap says so, with the reset time", async ({ request }) => {
  const login = await request.post(`${BASE()}/v1/auth/login`, { data: { email: EMAIL, password: PASSWORD } });
  const headers = { authorization: `Bearer ${(await login.json()).access_token}` };
  const summary = await (await request.get(`${BASE()}/v1/usage/summary`, { headers })).json();
  const capped = await request.patch(`${BASE()}/v1/billing/subscription`, {
    headers,
    data: { message_cap: summary.messages.used },
  });
  expect(capped.status()).toBe(200);

  await page.getByRole("link", { name: "Chat" }).click();
  await page.getByRole("link", { name: "Streaming demo" }).click();
  await page.getByLabel("Message", { exact: true }).fill("One too many");
  await page.getByRole("button", { name: "Send" }).click();
  const alert = page.getByRole("alert");
  await expect(alert).toContainText("Limit reached");
  await expect(alert).toContainText("You can try again at");
  await shot(page, "chat-quota");

  const lifted = await request.patch(`${BASE()}/v1/billing/subscription`, { headers, data: { message_cap: null } });
  expect(lifted.status()).toBe(200);
});

test("phone width: every page, and a one-handed chat", async () => {
  await page.setViewportSize(PHONE);
  for (const [path, name] of [
    ["/keys", "keys"],
    ["/usage", "usage"],
    ["/organisation", "organisation"],
    ["/plan", "plan"],
  ] as const) {
    await page.goto(path);
    await expect(page.locator("main h1").first()).toBeVisible();
    await expect(page.locator(".loading")).toHaveCount(0);
    await shot(page, name);
  }
  await page.goto("/chat");
  await page.getByRole("button", { name: "Conversations" }).click();
  await expect(page.getByRole("link", { name: "Streaming demo" })).toBeVisible();
  await shot(page, "chat-list");
  await page.getByRole("link", { name: "Streaming demo" }).click();
  await page.getByLabel("Message", { exact: true }).fill("From a phone");
  await page.getByRole("button", { name: "Send" }).click();
  await expect(page.getByRole("list", { name: "Messages" })).toContainText("Mock reply: From a phone");
  await shot(page, "chat");
  await page.getByRole("button", { name: "Menu" }).click();
  await expect(page.getByRole("navigation", { name: "Main" })).toBeVisible();
  await shot(page, "menu");
});

test("log out ends the session, and the login page at phone width", async () => {
  await page.getByRole("button", { name: "Log out" }).click();
  await expect(page).toHaveURL(/\/login$/);
  await page.reload();
  await expect(page.getByRole("heading", { name: "Log in" })).toBeVisible();
  await shot(page, "login");
  await page.getByRole("link", { name: "Create an account" }).click();
  await shot(page, "signup");
  await page.getByRole("link", { name: "Log in" }).click();
  // Logging back in works, and the refresh cookie is gone after logout.
  await page.getByLabel("Email").fill(EMAIL);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(page).toHaveURL(/\/chat$/);
});

/** Presses Tab until the focused element matches, as a keyboard user would. */
async function tabTo(p: Page, matches: (el: Element) => boolean, max = 40): Promise<void> {
  for (let i = 0; i < max; i++) {
    await p.keyboard.press("Tab");
    const handle = await p.evaluateHandle(() => document.activeElement);
    if (await handle.evaluate(matches)) return;
  }
  throw new Error("never reached by Tab");
}

test("a keyboard alone: log in, chat, and move between pages", async ({ browser }) => {
  const keyboard = await browser.newContext({ baseURL: BASE(), viewport: DESKTOP });
  const p = await keyboard.newPage();
  watch(p, "keyboard");
  await p.goto("/login");
  await tabTo(p, (el) => el.getAttribute("type") === "email");
  await p.keyboard.type(EMAIL);
  await p.keyboard.press("Tab");
  await p.keyboard.type(PASSWORD);
  await p.keyboard.press("Enter");
  await expect(p).toHaveURL(/\/chat$/);

  await tabTo(p, (el) => el.tagName === "TEXTAREA");
  await p.keyboard.type("Typed without a mouse");
  await p.keyboard.press("Enter");
  await expect(p.getByText("Mock reply: Typed without a mouse")).toBeVisible();

  await tabTo(p, (el) => el.tagName === "A" && el.textContent === "API keys");
  await p.keyboard.press("Enter");
  await expect(p).toHaveURL(/\/keys$/);
  await keyboard.close();
});

test("no errors in the browser console", async () => {
  // The failed signup's 422 and the capped send's 429 are the errors the browser logs on its
  // own (as failed requests); nothing else may appear.
  const unexpected = problems.filter((p) => !/the server responded with a status of (422|429)/.test(p));
  expect(unexpected).toEqual([]);
});
