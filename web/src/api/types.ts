// Names for the generated schema's types, so the rest of the app never spells out paths.
import type { components } from "./schema";

type S = components["schemas"];
export type User = S["UserOut"];
export type TokenResponse = S["TokenResponse"];
export type Org = S["OrgOut"];
export type Role = S["Role"];
export type Scope = S["Scope"];
export type Member = S["MemberOut"];
export type Invitation = S["InvitationOut"];
export type ApiKey = S["KeyOut"];
export type CreatedApiKey = S["CreatedKeyOut"];
export type Conversation = S["ConversationOut"];
export type Message = S["MessageOut"];
export type Exchange = S["ExchangeOut"];
export type Plan = S["PlanOut"];
export type PlanLimits = S["PlanLimitsOut"];
export type Subscription = S["SubscriptionOut"];
export type UsageSummary = S["UsageSummaryOut"];
export type Quota = S["QuotaOut"];
export type UsageRow = S["UsageRowOut"];
export type UsageReport = S["UsageReportOut"];
export type ErrorBody = S["ErrorBody"];

/** /v1/models answers in OpenAI's shape, which the document leaves open. */
export interface ModelInfo {
  id: string;
  object: "model";
  owned_by?: string;
}
