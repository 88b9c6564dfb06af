import { useState, type FormEvent } from "react";
import { fieldError, fieldOf } from "../api/errors";
import { useApiKeys, useCreateApiKey, useRevokeApiKey } from "../api/hooks";
import type { ApiKey, CreatedApiKey, Scope } from "../api/types";
import { CopyButton } from "../components/CopyButton";
import { ErrorMessage } from "../components/ErrorMessage";
import { Field } from "../components/Field";
import { Loading } from "../components/Loading";
import { dateTime } from "../lib/format";
import { roleAtLeast, useOrg } from "../lib/org";

const SCOPES: { id: Scope; label: string }[] = [
  { id: "inference", label: "Inference (chat completions, embeddings)" },
  { id: "conversations", label: "Conversations" },
  { id: "knowledge", label: "Knowledge bases" },
  { id: "admin", label: "Admin (manage the organisation)" },
];

export function sdkSnippet(origin: string, key: string): string {
  return `from openai import OpenAI

client = OpenAI(base_url="${origin}/v1", api_key="${key}")
reply = client.chat.completions.create(
    model="parley-mock",
    messages=[{"role": "user", "content": "Hello!"}],
)
print(reply.choices[0].message.content)`;
}

function NewKeyShown({ created, onDone }: { created: CreatedApiKey; onDone: () => void }) {
  return (
    <div className="card card-highlight" role="region" aria-label="New API key">
      <h2>Your new key</h2>
      <p>Copy it now: this is the only time Parley shows it.</p>
      <div className="secret">
        <code aria-label="API key secret">{created.key}</code>
        <CopyButton text={created.key} label="Copy key" />
      </div>
      <button type="button" className="button-secondary" onClick={onDone}>
        Done
      </button>
    </div>
  );
}

function CreateKeyForm({ onCreated }: { onCreated: (key: CreatedApiKey) => void }) {
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<Scope[]>(["inference"]);
  const create = useCreateApiKey();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate(
      { name, scopes },
      {
        onSuccess: (key) => {
          setName("");
          onCreated(key);
        },
      },
    );
  };
  return (
    <form className="card" onSubmit={submit} aria-label="Create API key">
      <h2>Create a key</h2>
      <Field label="Key name" value={name} required onChange={(e) => setName(e.target.value)}
        error={fieldError(create.error, "name")} placeholder="e.g. backend" />
      <fieldset>
        <legend>Scopes</legend>
        {SCOPES.map((s) => (
          <label key={s.id} className="check">
            <input type="checkbox" checked={scopes.includes(s.id)}
              onChange={(e) => setScopes(e.target.checked ? [...scopes, s.id] : scopes.filter((x) => x !== s.id))} />
            {s.label}
          </label>
        ))}
        {fieldError(create.error, "scopes") && <small className="field-error">{fieldError(create.error, "scopes")}</small>}
      </fieldset>
      {create.error != null && !["name", "scopes"].includes(fieldOf(create.error) ?? "") && (
        <ErrorMessage error={create.error} compact />
      )}
      <button type="submit" disabled={create.isPending}>{create.isPending ? "Creating…" : "Create key"}</button>
    </form>
  );
}

function KeyRow({ apiKey, canRevoke }: { apiKey: ApiKey; canRevoke: boolean }) {
  const revoke = useRevokeApiKey();
  const [confirming, setConfirming] = useState(false);
  const revoked = !!apiKey.revoked_at;
  return (
    <tr>
      <td data-label="Name">{apiKey.name}</td>
      <td data-label="Key"><code>{apiKey.prefix}…</code></td>
      <td data-label="Scopes">{apiKey.scopes.join(", ")}</td>
      <td data-label="Created">{dateTime(apiKey.created_at)}</td>
      <td data-label="Last used">{apiKey.last_used_at ? dateTime(apiKey.last_used_at) : "Never"}</td>
      <td data-label="Status">
        {revoked ? (
          <span className="badge">Revoked</span>
        ) : !canRevoke ? (
          <span className="muted">Active</span>
        ) : confirming ? (
          <span className="row">
            <button type="button" className="button-danger small" disabled={revoke.isPending}
              onClick={() => revoke.mutate(apiKey.id)}>
              Confirm revoke
            </button>
            <button type="button" className="button-secondary small" onClick={() => setConfirming(false)}>Cancel</button>
          </span>
        ) : (
          <button type="button" className="button-secondary small" aria-label={`Revoke ${apiKey.name}`}
            onClick={() => setConfirming(true)}>
            Revoke
          </button>
        )}
        {revoke.error != null && <ErrorMessage error={revoke.error} compact />}
      </td>
    </tr>
  );
}

export function KeysPage() {
  const { org } = useOrg();
  const canManage = roleAtLeast(org, "admin");
  const keys = useApiKeys();
  const [created, setCreated] = useState<CreatedApiKey | null>(null);
  const origin = window.location.origin;
  return (
    <div className="page">
      <h1>API keys</h1>
      <p className="muted">Keys act for {org?.name ?? "this organisation"} within their scopes.</p>
      {created && <NewKeyShown created={created} onDone={() => setCreated(null)} />}
      {canManage ? (
        <CreateKeyForm onCreated={setCreated} />
      ) : (
        <p className="note">Only admins and owners can create or revoke keys.</p>
      )}
      <section className="card" aria-labelledby="snippet-title">
        <h2 id="snippet-title">Use it with the OpenAI SDK</h2>
        <pre className="snippet"><code>{sdkSnippet(origin, created?.key ?? "sk-parley-...")}</code></pre>
        <CopyButton text={sdkSnippet(origin, created?.key ?? "sk-parley-...")} label="Copy snippet" />
      </section>
      <section aria-labelledby="keys-title">
        <h2 id="keys-title">Keys</h2>
        {!canManage ? null : keys.isPending ? (
          <Loading />
        ) : keys.error ? (
          <ErrorMessage error={keys.error} onRetry={() => void keys.refetch()} />
        ) : keys.data.data.length === 0 ? (
          <p className="muted">No keys yet.</p>
        ) : (
          <table className="table">
            <thead>
              <tr><th>Name</th><th>Key</th><th>Scopes</th><th>Created</th><th>Last used</th><th>Status</th></tr>
            </thead>
            <tbody>
              {keys.data.data.map((k) => <KeyRow key={k.id} apiKey={k} canRevoke={canManage} />)}
            </tbody>
          </table>
        )}
      </section>
    </div>
  );
}
