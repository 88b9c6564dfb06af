import { useModels } from "../api/hooks";

/** The models this organisation's plan allows (GET /v1/models answers only those). */
export function ModelPicker({ value, onChange }: { value: string | null; onChange: (model: string) => void }) {
  const models = useModels();
  const list = models.data ?? [];
  return (
    <label className="model-picker">
      <span>Model</span>
      <select
        value={value ?? ""}
        onChange={(e) => onChange(e.target.value)}
        disabled={models.isPending || !!models.error}
        aria-invalid={models.error ? true : undefined}
      >
        {models.isPending && <option value="">Loading…</option>}
        {models.error != null && <option value="">Models unavailable</option>}
        {value && !list.some((m) => m.id === value) && !models.isPending && (
          <option value={value}>{value} (not on your plan)</option>
        )}
        {!value && list.length > 0 && <option value="">Default</option>}
        {list.map((m) => (
          <option key={m.id} value={m.id}>
            {m.id}
          </option>
        ))}
      </select>
    </label>
  );
}
