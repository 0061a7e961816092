"""Python client of the LOFT memory API (see :mod:`loft_memory.client`), and the API's
models it returns (import them from here: where they are defined may change)."""

from loft_memory.client import ApiError, AsyncLoftClient, Call, Calls, LoftClient
from service.retrieval.candidates import ContextItem, ContextResponse, Provenance
from service.routers.erasure import ErasureReceipt
from service.schemas import (
    ChatResponse,
    CustomerSummary,
    EntitySearchResponse,
    ImportMessage,
    ImportResponse,
    LongTermMemory,
    MemoryDeleted,
    MemoryHistory,
    MemoryPage,
    MessageDeleted,
    SessionDeleted,
    SessionMessage,
    SessionMessagesPage,
    SessionPage,
    StatusResponse,
    WhoAmI,
)

__all__ = [
    "ApiError",
    "AsyncLoftClient",
    "Call",
    "Calls",
    "ChatResponse",
    "ContextItem",
    "ContextResponse",
    "CustomerSummary",
    "EntitySearchResponse",
    "ErasureReceipt",
    "ImportMessage",
    "ImportResponse",
    "LoftClient",
    "LongTermMemory",
    "MemoryDeleted",
    "MemoryHistory",
    "MemoryPage",
    "MessageDeleted",
    "Provenance",
    "SessionDeleted",
    "SessionMessage",
    "SessionMessagesPage",
    "SessionPage",
    "StatusResponse",
    "WhoAmI",
]
