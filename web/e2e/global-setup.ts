// Starts a real Parley (`parley serve`) on a free port with a throwaway data directory and
// the offline mock model, serving this checkout's web/dist; stops it when the run ends.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "..", "..");

// The mock answers word by word with a short pause, so replies visibly stream; a price
// makes costs show on the usage page; a few seats leave room to invite.
const CONFIG = `
providers:
  mock: {type: mock, options: {delay_s: 0.04}}
models:
  parley-mock:
    tier: basic
    context_window: 32768
    owned_by: parley
    price: {input_per_mtok_usd: 2, output_per_mtok_usd: 6}
    deployments: [{provider: mock, model: parley-mock}]
plans:
  free: {seats: 5}
`;

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? ok(address.port) : fail(new Error("no port"))));
    });
  });
}

async function waitReady(url: string, log: () => string, deadline = Date.now() + 60_000): Promise<void> {
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${url}/readyz`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`Parley did not become ready at ${url}:\n${log()}`);
}

export default async function globalSetup(): Promise<() => Promise<void>> {
  const dataDir = mkdtempSync(join(tmpdir(), "parley-e2e-"));
  const configPath = join(dataDir, "parley.yaml");
  writeFileSync(configPath, CONFIG);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let output = "";
  // The developer's own PARLEY_* settings (a PostgreSQL URL, say) stay out of it.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PARLEY_")));
  const server = spawn(join(ROOT, ".venv", "bin", "parley"), ["serve", "--port", String(port)], {
    cwd: dataDir,
    env: {
      ...env,
      PARLEY_DATA_DIR: dataDir,
      PARLEY_CONFIG: configPath,
      PARLEY_PUBLIC_URL: url,
      PARLEY_LOG_LEVEL: "WARNING",
      PARLEY_ARGON2_TIME_COST: "1",
      PARLEY_ARGON2_MEMORY_KIB: "8192",
      // Room for the second organisation the tests create (one free one by default).
      PARLEY_MAX_FREE_ORGS_PER_USER: "2",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  server.stdout.on("data", keep);
  server.stderr.on("data", keep);
  await waitReady(url, () => output);
  process.env.PARLEY_E2E_URL = url;
  process.env.PARLEY_E2E_DATA = dataDir;
  return async () => {
    server.kill("SIGTERM");
    await new Promise((r) => {
      const t = setTimeout(() => {
        server.kill("SIGKILL");
        r(null);
      }, 10_000);
      server.once("exit", () => {
        clearTimeout(t);
        r(null);
      });
    });
    rmSync(dataDir, { recursive: true, force: true });
  };
}
