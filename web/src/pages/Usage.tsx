import { useState } from "react";
import { request } from "../api/http";
import { useApiKeys, useUsage, useUsageSummary, type GroupBy } from "../api/hooks";
import type { UsageRow } from "../api/types";
import { BarChart } from "../components/BarChart";
import { ErrorMessage } from "../components/ErrorMessage";
import { Loading } from "../components/Loading";
import { ProgressBar } from "../components/ProgressBar";
import { bytes, date, money } from "../lib/format";
import { roleAtLeast, useOrg } from "../lib/org";

function Summary() {
  const summary = useUsageSummary();
  if (summary.isPending) return <Loading />;
  if (summary.error) return <ErrorMessage error={summary.error} onRetry={() => void summary.refetch()} />;
  const s = summary.data;
  const cur = (n: number) => money(n, s.currency);
  return (
    <section className="card" aria-labelledby="period-title">
      <h2 id="period-title">
        This period <span className="muted">({date(s.period_start)} – {date(s.period_end)}, plan {s.plan})</span>
      </h2>
      <ProgressBar label="Messages" used={s.messages.used} limit={s.messages.limit} />
      <ProgressBar label="Spend" used={s.spend_micros.used} limit={s.spend_micros.limit} format={cur} />
      <ProgressBar label="Storage" used={s.storage_bytes.used} limit={s.storage_bytes.limit} format={bytes} />
      <ProgressBar label="Seats" used={s.seats.used} limit={s.seats.limit} />
      <p>
        Cost so far: <strong>{cur(s.cost_micros)}</strong>
        {(s.messages.overage ?? 0) > 0 && <> · {(s.messages.overage ?? 0).toLocaleString()} messages over the plan</>}
      </p>
    </section>
  );
}

function Daily() {
  const days = useUsage("day");
  if (days.isPending) return <Loading />;
  if (days.error) return <ErrorMessage error={days.error} onRetry={() => void days.refetch()} />;
  const rows = days.data.data;
  return (
    <section className="card charts" aria-label="Per day">
      <BarChart title="Messages per day" data={rows.map((r) => ({ label: r.group ?? "", value: r.messages }))} />
      <BarChart
        title="Cost per day"
        data={rows.map((r) => ({ label: r.group ?? "", value: r.cost_micros }))}
        format={(n) => money(n)}
      />
    </section>
  );
}

function Breakdown({ groupBy, title, name }: { groupBy: GroupBy; title: string; name: (row: UsageRow) => string }) {
  const report = useUsage(groupBy);
  return (
    <section className="card" aria-labelledby={`by-${groupBy}`}>
      <h2 id={`by-${groupBy}`}>{title}</h2>
      {report.isPending ? (
        <Loading />
      ) : report.error ? (
        <ErrorMessage error={report.error} compact onRetry={() => void report.refetch()} />
      ) : report.data.data.length === 0 ? (
        <p className="muted">Nothing yet in this period.</p>
      ) : (
        <table className="table">
          <thead>
            <tr><th>{groupBy === "model" ? "Model" : "Key"}</th><th>Requests</th><th>Messages</th><th>Tokens in / out</th><th>Cost</th></tr>
          </thead>
          <tbody>
            {report.data.data.map((r) => (
              <tr key={r.group ?? "none"}>
                <td data-label={groupBy === "model" ? "Model" : "Key"}>{name(r)}</td>
                <td data-label="Requests">{r.requests.toLocaleString()}</td>
                <td data-label="Messages">{r.messages.toLocaleString()}</td>
                <td data-label="Tokens">{r.prompt_tokens.toLocaleString()} / {r.completion_tokens.toLocaleString()}</td>
                <td data-label="Cost">{money(r.cost_micros)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function CsvDownload() {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const download = async () => {
    setBusy(true);
    setError(null);
    try {
      const response = await request("/v1/usage?group_by=day&format=csv");
      const url = URL.createObjectURL(await response.blob());
      const a = document.createElement("a");
      a.href = url;
      a.download = "parley-usage.csv";
      document.body.append(a);
      a.click();
      a.remove();
      window.setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="row">
      <button type="button" className="button-secondary" onClick={() => void download()} disabled={busy}>
        {busy ? "Preparing…" : "Download CSV"}
      </button>
      {error != null && <ErrorMessage error={error} compact />}
    </div>
  );
}

export function UsagePage() {
  const { org } = useOrg();
  const admin = roleAtLeast(org, "admin");
  const apiKeys = useApiKeys();
  const keyName = (row: UsageRow) => {
    if (!row.group) return "Signed-in users (no key)";
    const found = admin ? apiKeys.data?.data.find((k) => k.id === row.group) : undefined;
    return found ? `${found.name} (${found.prefix}…)` : row.group;
  };
  return (
    <div className="page">
      <div className="page-header">
        <h1>Usage</h1>
        <CsvDownload />
      </div>
      <Summary />
      <Daily />
      <div className="grid-wide">
        <Breakdown groupBy="model" title="By model" name={(r) => r.group ?? "Unknown"} />
        <Breakdown groupBy="api_key" title="By API key" name={keyName} />
      </div>
    </div>
  );
}
