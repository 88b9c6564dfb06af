// The first message of a conversation just created, waiting for its view to send it.
const pending = new Map<string, { content: string; model: string | null }>();

export function setPendingFirst(conversationId: string, content: string, model: string | null): void {
  pending.set(conversationId, { content, model });
}

export function takePendingFirst(conversationId: string): { content: string; model: string | null } | null {
  const found = pending.get(conversationId) ?? null;
  pending.delete(conversationId);
  return found;
}
