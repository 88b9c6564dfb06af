interface Props {
  title: string;
  data: { label: string; value: number }[];
  format?: (n: number) => string;
}

/** A small bar chart in SVG; the figures are also in the table beside it for screen readers. */
export function BarChart({ title, data, format = (n) => n.toLocaleString() }: Props) {
  const max = Math.max(1, ...data.map((d) => d.value));
  const width = 600;
  const height = 160;
  const gap = 4;
  const bar = data.length ? Math.min(48, Math.max(2, (width - gap * (data.length - 1)) / data.length)) : 0;
  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      {data.length === 0 ? (
        <p className="muted">Nothing yet in this period.</p>
      ) : (
        <svg viewBox={`0 0 ${width} ${height + 20}`} role="img" aria-label={title} preserveAspectRatio="none">
          {data.map((d, i) => {
            const h = Math.round((d.value / max) * height);
            return (
              <g key={d.label}>
                <rect x={i * (bar + gap)} y={height - h} width={bar} height={h} rx={2}>
                  <title>{`${d.label}: ${format(d.value)}`}</title>
                </rect>
                {(data.length <= 12 || i % Math.ceil(data.length / 8) === 0) && (
                  <text x={i * (bar + gap) + bar / 2} y={height + 15} textAnchor="middle">
                    {d.label.slice(5)}
                  </text>
                )}
              </g>
            );
          })}
        </svg>
      )}
    </figure>
  );
}
