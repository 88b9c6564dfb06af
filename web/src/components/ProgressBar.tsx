interface Props {
  label: string;
  used: number;
  limit: number | null | undefined;
  format?: (n: number) => string;
}

/** Used against a limit; an unlimited quota shows just the figure. */
export function ProgressBar({ label, used, limit, format = (n) => n.toLocaleString() }: Props) {
  const pct = limit ? Math.min(100, Math.round((used / limit) * 100)) : 0;
  const level = pct >= 100 ? "full" : pct >= 80 ? "high" : "ok";
  return (
    <div className="progress">
      <div className="progress-label">
        <span>{label}</span>
        <span>
          {format(used)} {limit != null ? `of ${format(limit)}` : "(no limit)"}
        </span>
      </div>
      {limit != null && (
        <div
          className={`progress-track progress-${level}`}
          role="progressbar"
          aria-label={label}
          aria-valuemin={0}
          aria-valuemax={100}
          aria-valuenow={pct}
          aria-valuetext={`${format(used)} of ${format(limit)}`}
        >
          <div className="progress-fill" style={{ width: `${pct}%` }} />
        </div>
      )}
    </div>
  );
}
