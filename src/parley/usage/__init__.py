"""The usage ledger: one event per inference request, the source of truth for quotas and bills."""
