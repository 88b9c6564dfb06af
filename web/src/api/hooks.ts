// Server state: one hook per resource, over the typed client. Keys carry the organisation,
// so switching organisation shows that organisation's data.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, unwrap } from "./client";
import { getCurrentOrg, request } from "./http";
import type { Conversation, Message, ModelInfo, Role, Scope, UsageReport } from "./types";

const org = () => getCurrentOrg() ?? "default";

export const keys = {
  orgs: ["orgs"] as const,
  models: () => ["models", org()] as const,
  conversations: (q: string) => ["conversations", org(), q] as const,
  allConversations: () => ["conversations", org()] as const,
  conversation: (id: string) => ["conversation", org(), id] as const,
  messages: (id: string) => ["messages", org(), id] as const,
  apiKeys: () => ["api-keys", org()] as const,
  usageSummary: () => ["usage-summary", org()] as const,
  usage: (groupBy: string) => ["usage", org(), groupBy] as const,
  plans: ["plans"] as const,
  subscription: () => ["subscription", org()] as const,
  members: (orgId: string) => ["members", orgId] as const,
  invitations: (orgId: string) => ["invitations", orgId] as const,
};

export function useOrgs() {
  return useQuery({
    queryKey: keys.orgs,
    queryFn: () => unwrap(api.GET("/v1/orgs")),
  });
}

export function useCreateOrg() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: { name: string }) => unwrap(api.POST("/v1/orgs", { body })),
    onSuccess: () => qc.invalidateQueries({ queryKey: keys.orgs }),
  });
}

export function useModels() {
  return useQuery({
    queryKey: keys.models(),
    queryFn: async () => {
      const response = await request("/v1/models");
      const body = (await response.json()) as { data: ModelInfo[] };
      return body.data;
    },
  });
}

// Conversations

export function useConversations(q: string) {
  return useQuery({
    queryKey: keys.conversations(q),
    queryFn: () =>
      unwrap(api.GET("/v1/conversations", { params: { query: { limit: 100, ...(q ? { q } : {}) } } })),
  });
}

export function useConversation(id: string | undefined) {
  return useQuery({
    queryKey: keys.conversation(id ?? ""),
    enabled: !!id,
    queryFn: () =>
      unwrap(api.GET("/v1/conversations/{conversation_id}", { params: { path: { conversation_id: id! } } })),
  });
}

export function useMessages(id: string | undefined) {
  return useQuery({
    queryKey: keys.messages(id ?? ""),
    enabled: !!id,
    queryFn: async (): Promise<Message[]> => {
      const list = await unwrap(
        api.GET("/v1/conversations/{conversation_id}/messages", { params: { path: { conversation_id: id! } } }),
      );
      return list.data;
    },
  });
}

export function useCreateConversation() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: { model?: string | null; title?: string | null }) =>
      unwrap(api.POST("/v1/conversations", { body })),
    onSuccess: () => qc.invalidateQueries({ queryKey: keys.allConversations() }),
  });
}

export function useUpdateConversation() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (args: { id: string; title?: string; model?: string; current_leaf_id?: string }) => {
      const { id, ...body } = args;
      return unwrap(
        api.PATCH("/v1/conversations/{conversation_id}", { params: { path: { conversation_id: id } }, body }),
      );
    },
    onSuccess: (conversation: Conversation) => {
      qc.setQueryData(keys.conversation(conversation.id), conversation);
      void qc.invalidateQueries({ queryKey: keys.allConversations() });
      void qc.invalidateQueries({ queryKey: keys.messages(conversation.id) });
    },
  });
}

export function useDeleteConversation() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) =>
      unwrap(api.DELETE("/v1/conversations/{conversation_id}", { params: { path: { conversation_id: id } } })),
    onSuccess: () => qc.invalidateQueries({ queryKey: keys.allConversations() }),
  });
}

// API keys

export function useApiKeys() {
  return useQuery({
    queryKey: keys.apiKeys(),
    queryFn: () => unwrap(api.GET("/v1/api-keys", { params: { query: { limit: 100 } } })),
  });
}

export function useCreateApiKey() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: { name: string; scopes: Scope[] }) => unwrap(api.POST("/v1/api-keys", { body })),
    onSuccess: () => qc.invalidateQueries({ queryKey: keys.apiKeys() }),
  });
}

export function useRevokeApiKey() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => unwrap(api.DELETE("/v1/api-keys/{key_id}", { params: { path: { key_id: id } } })),
    onSuccess: () => qc.invalidateQueries({ queryKey: keys.apiKeys() }),
  });
}

// Usage and plans

export function useUsageSummary() {
  return useQuery({
    queryKey: keys.usageSummary(),
    queryFn: () => unwrap(api.GET("/v1/usage/summary")),
  });
}

export type GroupBy = "day" | "model" | "api_key" | "user";

export function useUsage(groupBy: GroupBy) {
  return useQuery({
    queryKey: keys.usage(groupBy),
    // The route also answers CSV, so the document leaves its JSON body untyped.
    queryFn: async () =>
      (await unwrap(api.GET("/v1/usage", { params: { query: { group_by: groupBy } } }))) as UsageReport,
  });
}

export function usePlans() {
  return useQuery({
    queryKey: keys.plans,
    queryFn: () => unwrap(api.GET("/v1/billing/plans")),
  });
}

export function useSubscription() {
  return useQuery({
    queryKey: keys.subscription(),
    queryFn: () => unwrap(api.GET("/v1/billing/subscription")),
  });
}

// Organisation

export function useMembers(orgId: string | null) {
  return useQuery({
    queryKey: keys.members(orgId ?? ""),
    enabled: !!orgId,
    queryFn: () =>
      unwrap(
        api.GET("/v1/orgs/{org_id}/members", { params: { path: { org_id: orgId! }, query: { limit: 100 } } }),
      ),
  });
}

export function useInvitations(orgId: string | null, enabled: boolean) {
  return useQuery({
    queryKey: keys.invitations(orgId ?? ""),
    enabled: !!orgId && enabled,
    queryFn: () =>
      unwrap(
        api.GET("/v1/orgs/{org_id}/invitations", {
          params: { path: { org_id: orgId! }, query: { limit: 100 } },
        }),
      ),
  });
}

export function useInvite(orgId: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: { email: string; role: Role }) =>
      unwrap(api.POST("/v1/orgs/{org_id}/invitations", { params: { path: { org_id: orgId } }, body })),
    onSuccess: () => qc.invalidateQueries({ queryKey: keys.invitations(orgId) }),
  });
}

export function useRevokeInvitation(orgId: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (invitationId: string) =>
      unwrap(
        api.DELETE("/v1/orgs/{org_id}/invitations/{invitation_id}", {
          params: { path: { org_id: orgId, invitation_id: invitationId } },
        }),
      ),
    onSuccess: () => qc.invalidateQueries({ queryKey: keys.invitations(orgId) }),
  });
}

export function useChangeRole(orgId: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (args: { userId: string; role: Role }) =>
      unwrap(
        api.PATCH("/v1/orgs/{org_id}/members/{user_id}", {
          params: { path: { org_id: orgId, user_id: args.userId } },
          body: { role: args.role },
        }),
      ),
    onSuccess: () => qc.invalidateQueries({ queryKey: keys.members(orgId) }),
  });
}

export function useRemoveMember(orgId: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (userId: string) =>
      unwrap(
        api.DELETE("/v1/orgs/{org_id}/members/{user_id}", { params: { path: { org_id: orgId, user_id: userId } } }),
      ),
    onSuccess: () => qc.invalidateQueries({ queryKey: keys.members(orgId) }),
  });
}
