"""Imports every domain's tables so the metadata (and migrations) see them all."""

from parley.accounts.models import RefreshToken, User
from parley.audit.models import AuditEvent
from parley.backends.models import Broadcast
from parley.billing.models import PlanRow, QuotaNotice, Subscription
from parley.conversations.models import Conversation, ConversationSummary, Message
from parley.db.base import Base
from parley.jobs.models import Job
from parley.keys.models import ApiKey
from parley.knowledge.models import Chunk, File, FileBatch, VectorStore, VectorStoreFile
from parley.orgs.models import Invitation, Membership, Organization
from parley.usage.models import UsageDaily, UsageEvent

__all__ = [
    "ApiKey",
    "AuditEvent",
    "Base",
    "Broadcast",
    "Chunk",
    "Conversation",
    "ConversationSummary",
    "File",
    "FileBatch",
    "Invitation",
    "Job",
    "Membership",
    "Message",
    "Organization",
    "PlanRow",
    "QuotaNotice",
    "RefreshToken",
    "Subscription",
    "UsageDaily",
    "UsageEvent",
    "User",
    "VectorStore",
    "VectorStoreFile",
]
