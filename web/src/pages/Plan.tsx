import { usePlans, useSubscription } from "../api/hooks";
import type { Plan, PlanLimits } from "../api/types";
import { ErrorMessage } from "../components/ErrorMessage";
import { Loading } from "../components/Loading";
import { date, money } from "../lib/format";

const n = (v: number | null | undefined, unit = "") => (v == null ? "Unlimited" : `${v.toLocaleString()}${unit}`);

function Limits({ limits }: { limits: PlanLimits }) {
  return (
    <dl className="limits">
      <dt>Messages per period</dt><dd>{n(limits.messages_per_period)}</dd>
      <dt>Requests per minute</dt><dd>{n(limits.requests_per_minute)}</dd>
      <dt>Tokens per minute</dt><dd>{n(limits.tokens_per_minute)}</dd>
      <dt>Seats</dt><dd>{n(limits.seats)}</dd>
      <dt>Storage</dt><dd>{n(limits.storage_mb, " MB")}</dd>
      <dt>Model tiers</dt><dd>{limits.model_tiers.join(", ") || "None"}</dd>
      <dt>Priority routing</dt><dd>{limits.priority_routing ? "Yes" : "No"}</dd>
      <dt>Overage</dt><dd>{limits.overage ? "Billed per message" : "Stops at the limit"}</dd>
    </dl>
  );
}

function PlanCard({ plan, current, limits }: { plan: Plan; current: boolean; limits?: PlanLimits }) {
  return (
    <article className={current ? "card plan plan-current" : "card plan"} aria-label={`${plan.name} plan`}>
      <h2>
        {plan.name} {current && <span className="badge">Current plan</span>}
      </h2>
      <p className="price">
        {plan.monthly_price_micros === 0 ? "Free" : `${money(plan.monthly_price_micros, plan.currency)} / month`}
        {plan.annual_price_micros > 0 && (
          <small className="muted"> or {money(plan.annual_price_micros, plan.currency)} / year</small>
        )}
      </p>
      <Limits limits={limits ?? plan.limits} />
      {plan.limits.overage && plan.overage_price_micros_per_message > 0 && (
        <p className="muted">Overage: {money(plan.overage_price_micros_per_message, plan.currency)} per message</p>
      )}
    </article>
  );
}

export function PlanPage() {
  const subscription = useSubscription();
  const plans = usePlans();
  if (subscription.isPending || plans.isPending) return <Loading />;
  const error = subscription.error ?? plans.error;
  if (error) return <ErrorMessage error={error} onRetry={() => { void subscription.refetch(); void plans.refetch(); }} />;
  const sub = subscription.data!;
  const others = plans.data!.data.filter((p) => p.id !== sub.plan.id);
  return (
    <div className="page">
      <h1>Plan</h1>
      <p>
        {sub.plan.name}, billed {sub.interval === "year" ? "yearly" : "monthly"} ({sub.status}); this period runs{" "}
        {date(sub.current_period_start)} – {date(sub.current_period_end)}.
        {sub.message_cap != null && <> Your own cap: {sub.message_cap.toLocaleString()} messages.</>}
        {sub.spending_cap_micros != null && <> Spending cap: {money(sub.spending_cap_micros, sub.plan.currency)}.</>}
      </p>
      <div className="plans">
        <PlanCard plan={sub.plan} limits={sub.limits} current />
        {others.map((p) => <PlanCard key={p.id} plan={p} current={false} />)}
      </div>
      <p className="muted">To change plan, ask your Parley operator.</p>
    </div>
  );
}
