"""Request and response models of the REST API; validation happens here, at the edge.

Text that reaches a store must be storable: no NUL characters and no lone surrogates
(``SafeText``), and numbers must be finite. Timestamps carry a timezone and lie in a
sane window; ``metadata`` is bounded in size and depth. Each rule is written into the
OpenAPI schema where JSON Schema can say it, and every violation is a readable 422.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

MAX_MESSAGE_BYTES = 32 * 1024
MAX_QUERY_CHARS = 4000
MAX_METADATA_BYTES = 8 * 1024
MAX_METADATA_DEPTH = 5
USER_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,128}$"
# message times an import may carry: real history, not the calendar's edges
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
FUTURE_SKEW = timedelta(days=1)

UserIdentifier = Annotated[str, StringConstraints(pattern=USER_ID_PATTERN)]
Role = Literal["user", "assistant", "system"]
# how much of a customer's conversation is remembered (service.core.consent)
MemoryMode = Literal["full", "session", "off"]


def check_text(value: str, what: str = "text") -> str:
    """Reject what PostgreSQL cannot store as text: NUL and lone surrogates."""
    if "\x00" in value:
        raise ValueError(f"{what} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} must be valid Unicode (it contains a lone surrogate)") from exc
    return value


SafeText = Annotated[str, AfterValidator(check_text)]


def _message_text(value: str) -> str:
    check_text(value, "message")
    if not value.strip():
        raise ValueError("message must not be empty or whitespace")
    if len(value.encode("utf-8")) > MAX_MESSAGE_BYTES:
        raise ValueError(f"message is larger than {MAX_MESSAGE_BYTES // 1024} KB")
    return value


MessageText = Annotated[str, AfterValidator(_message_text), Field(min_length=1, max_length=MAX_MESSAGE_BYTES)]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp needs a timezone (e.g. 2024-05-01T10:00:00Z)")
    return value


def _plausible(value: datetime) -> datetime:
    _aware(value)
    latest = datetime.now(UTC) + FUTURE_SKEW
    if not EARLIEST <= value <= latest:
        raise ValueError(f"timestamp must lie between {EARLIEST:%Y-%m-%d} and tomorrow")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
MessageTime = Annotated[datetime, AfterValidator(_plausible)]


def _question_time(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("as_of needs a time zone, e.g. 2024-05-01T10:00:00Z")
    return _plausible(value)


# when a question is asked: the same window as a message's time (its offset is kept: it says
# which calendar day "today" and "last week" are)
QuestionTime = Annotated[datetime, AfterValidator(_question_time)]
QUESTION_TIME_EXAMPLES = ["2024-05-01T10:00:00Z", "2024-05-01T10:00:00-04:00", "2024-05-01T10:00:00+05:30"]


def _metadata(value: dict[str, Any]) -> dict[str, Any]:
    def walk(node: Any, depth: int) -> None:
        if depth > MAX_METADATA_DEPTH:
            raise ValueError(f"metadata may nest at most {MAX_METADATA_DEPTH} levels")
        if isinstance(node, dict):
            for key, item in node.items():
                check_text(key, "metadata keys")
                walk(item, depth + 1)
        elif isinstance(node, list):
            for item in node:
                walk(item, depth + 1)
        elif isinstance(node, str):
            check_text(node, "metadata values")
        elif isinstance(node, float) and not math.isfinite(node):
            raise ValueError("metadata numbers must be finite (no NaN or Infinity)")

    walk(value, 1)
    if len(json.dumps(value, ensure_ascii=False).encode("utf-8")) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is larger than {MAX_METADATA_BYTES // 1024} KB")
    return value


Metadata = Annotated[dict[str, Any], AfterValidator(_metadata)]
IdempotencyKey = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,200}$")]


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_identifier: UserIdentifier
    message: MessageText
    session_id: uuid.UUID | None = None
    budget: int = Field(default=1000, ge=50, le=16000, description="context budget in tokens (characters / 4)")
    message_id: IdempotencyKey | None = Field(
        default=None,
        description="the client's id for this turn (or send an Idempotency-Key header): a retry with the same id "
        "returns the stored reply instead of storing the turn twice",
    )
    stream: bool = Field(
        default=False,
        description="answer as server-sent events (text/event-stream): `start`, `token`…, then `done` carrying "
        "this call's JSON answer; see the operation's description",
    )


class ChatResponse(BaseModel):
    session_id: uuid.UUID
    message_id: int | None = Field(description="the stored turn (null when the memory mode is 'off': nothing stored)")
    reply: str
    reply_message_id: int | None = Field(description="the stored reply (null when the memory mode is 'off')")
    context: ContextResponse
    llm: bool
    replayed: bool = Field(default=False, description="true when this answers a retry of a turn already answered")
    memory_mode: MemoryMode = Field(
        default="full", description="the customer's memory mode this turn was handled under (see /consent)"
    )


class ChatStreamStart(BaseModel):
    """The ``start`` event of a streamed chat turn: the turn is stored."""

    session_id: uuid.UUID
    message_id: int | None
    llm: bool
    replayed: bool


class ChatStreamToken(BaseModel):
    """A ``token`` event: the next piece of the reply."""

    text: str


class ImportMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    content: MessageText
    created_at: MessageTime | None = Field(default=None, description="when it was said (with a timezone; 1970 to now)")
    speaker: Annotated[SafeText, StringConstraints(max_length=128)] | None = None
    external_id: Annotated[SafeText, StringConstraints(min_length=1, max_length=256)] | None = None
    metadata: Metadata | None = Field(
        default=None,
        description=f"free JSON, at most {MAX_METADATA_BYTES // 1024} KB and {MAX_METADATA_DEPTH} levels deep",
    )


class ImportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: uuid.UUID | None = Field(default=None, description="import into this session (created if new)")
    channel: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]{1,32}$")] = "import"
    messages: list[ImportMessage] = Field(min_length=1, max_length=1000)


class ImportResponse(BaseModel):
    session_id: uuid.UUID
    message_ids: list[int]
    created: int
    duplicates: int


class EntitySearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: Annotated[SafeText, StringConstraints(min_length=1, max_length=2000)]
    user_identifier: UserIdentifier
    limit: int = Field(default=10, ge=1, le=100)


# -- long-term memories ---------------------------------------------------------------------


class LongTermMemory(BaseModel):
    """One long-term memory: a standalone statement derived from the customer's messages."""

    id: uuid.UUID
    kind: Literal["fact", "preference", "event", "insight", "pattern"]
    content: str
    subject: str | None = Field(
        description="what it is about, e.g. 'preference:material'; a newer memory "
        "of the same subject that replaces it supersedes it"
    )
    importance: float
    access_count: int
    last_accessed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    valid_from: datetime = Field(description="when the fact started being true")
    valid_to: datetime | None = Field(description="when it stopped being true (superseded); null while current")
    superseded_by: uuid.UUID | None
    source_message_ids: list[int] = Field(description="the messages it was derived from")


class MemoryPage(BaseModel):
    user_identifier: str
    memories: list[LongTermMemory]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last")


class MemoryEvent(BaseModel):
    event: Literal["add", "update", "supersede", "delete"]
    old_content: str | None
    new_content: str | None
    detail: dict[str, Any]
    at: datetime


class MemoryHistory(BaseModel):
    memory: LongTermMemory | None = Field(description="null once the memory was deleted")
    history: list[MemoryEvent]


class MemoryDeleted(BaseModel):
    """One memory forgotten: the memory, its words in its history, and the preference it
    states in the graph (closed as of now). The turns it came from stay in the history."""

    id: uuid.UUID
    deleted: bool
    events_scrubbed: int = Field(description="history entries whose text was removed with it")
    graph_facts_closed: int = Field(
        default=0, description="preferences the memory stated that were current in the graph and are closed now"
    )


class SampleDataRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_identifier: UserIdentifier = "sarah"


class SampleDataResponse(BaseModel):
    user_identifier: str
    sessions: list[str]
    messages_created: int
    note: str


class WhoAmI(BaseModel):
    """The caller, as the service sees them (never the key itself)."""

    key: str = Field(description="the key's name ('local' when no keys are configured)")
    role: Literal["admin", "chat", "customer"]
    customer: str | None = Field(description="the one customer a customer key acts for")
    open: bool = Field(description="true when the service runs without keys (listening on localhost only)")


# -- what LOFT remembers about a customer ---------------------------------------------------


class PreferenceFact(BaseModel):
    rel: Literal["PREFERS", "DISLIKES"]
    polarity: Literal["prefers", "dislikes"]
    attribute: str
    value: str | int | float | None
    strength: float | None = None
    confidence: float | None = None
    mentions: int | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    source_message_ids: list[int] | None = None


class _Record(BaseModel):
    """A part of an answer a client reads by attribute; ``part["name"]`` and
    ``part.get("name")`` also work, for code written when these were plain JSON objects."""

    def __getitem__(self, key: str) -> Any:
        if key not in type(self).model_fields and key not in (self.model_extra or {}):
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


class PurchaseFact(_Record):
    """A PURCHASED relationship: from the order feed (``order_id``) or said in chat."""

    sku: str | None = None
    name: str | None = None
    category: str | None = None
    price: float | None = None
    qty: int | None = None
    order_id: str | int | None = None
    at: datetime | None = None
    source_message_ids: list[int] | None = None


class InterestFact(_Record):
    """An ASKED_ABOUT or VIEWED relationship to a product or a category."""

    rel: str = Field(description="ASKED_ABOUT or VIEWED")
    sku: str | None = None
    name: str | None = None
    mentions: int | None = None
    at: datetime | None = None
    source_message_ids: list[int] | None = None


class EntityRelation(_Record):
    type: str = Field(description="the RELATED_TO relationship's type, e.g. SIBLING_OF")
    other: str | None = Field(description="the other entity's name")


class EntityFact(_Record):
    """A person or thing the customer mentioned."""

    key: str
    name: str | None = None
    type: str | None = None
    relation: str | None = Field(default=None, description="how it relates to the customer (sister, dog, …)")
    summary: str | None = None
    event_at: datetime | None = None
    mentions: int | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    source_message_ids: list[int] | None = None
    related: list[EntityRelation] | None = Field(
        default=None, description="its relationships to the other entities listed (in the summary)"
    )


class MemoryFact(_Record):
    """A long-term memory as the summary lists it."""

    id: str
    kind: str
    content: str
    importance: float
    created_at: datetime
    valid_from: datetime
    valid_to: datetime | None
    superseded_by: str | None
    source_message_ids: list[int]


class SessionSummaryFact(_Record):
    """A quiet session's summary as the customer summary lists it."""

    session_id: str
    summary: str
    key_entities: list[str]
    last_message_at: datetime | None


class CustomerSummary(BaseModel):
    user_identifier: str
    name: str | None
    customer_since: datetime
    preferences: list[PreferenceFact]
    purchases: list[PurchaseFact]
    interests: list[InterestFact]
    entities: list[EntityFact]
    recent_topics: list[str]
    memories: list[MemoryFact]
    summaries: list[SessionSummaryFact]
    stats: dict[str, int]
    tiers: dict[str, bool]
    errors: dict[str, str]


class GraphNode(BaseModel):
    id: str = Field(description="stable within the answer: 'customer', or '<Label>:<key>'")
    label: Literal["Customer", "Product", "Entity", "Style", "Material", "Color", "Category", "Brand"]
    name: str
    kind: str = Field(description="what to draw: 'customer', 'product', 'style', …, or an entity's type ('person', …)")


class GraphEdge(BaseModel):
    source: str
    target: str
    type: str = Field(description="PREFERS, DISLIKES, PURCHASED, ASKED_ABOUT, VIEWED, MENTIONED, IN_CATEGORY, …")
    attribute: str | None = Field(default=None, description="a preference's attribute, or a mention's relation")
    current: bool = Field(description="false for a preference that was superseded (valid_to set)")
    at: datetime | None = None


class CustomerGraph(BaseModel):
    """The customer's neighbourhood in the knowledge graph, bounded (``limit`` per kind)."""

    user_identifier: str
    name: str | None
    nodes: list[GraphNode]
    edges: list[GraphEdge]


class EntityRelationship(BaseModel):
    type: str
    name: str | None
    key: str | None
    direction: Literal["in", "out"]


class EntityHit(BaseModel):
    key: str
    name: str | None
    type: str | None
    summary: str | None = None
    event_at: datetime | None = None
    score: float
    relation: str | None = None
    mentions: int | None = None
    last_seen: datetime | None = None
    source_message_ids: list[int] | None = None
    relationships: list[EntityRelationship]


class EntitySearchResponse(BaseModel):
    query: str
    user_identifier: str
    entities: list[EntityHit]
    tiers: dict[str, bool] = Field(default_factory=lambda: {"neo4j": True})
    errors: dict[str, str] = Field(
        default_factory=dict,
        description="while Neo4j is away: why, and that the "
        "answer came from this process's last copy of the customer's graph (if any)",
    )


# -- the order feed --------------------------------------------------------------------------

ORDER_ID_PATTERN = r"^[A-Za-z0-9._:#/-]{1,128}$"
SKU_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
MAX_ORDER_LINES = 500
# the most one order may total: a business cap far above any furniture order, and far below
# what orders.total (numeric(14,2), under 10^12) holds; 500 lines at their maxima would not fit
MAX_ORDER_TOTAL = 1_000_000_000


class OrderLine(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sku: Annotated[str, StringConstraints(pattern=SKU_PATTERN)] = Field(description="a SKU of the catalog")
    qty: int = Field(1, ge=1, le=10_000)
    unit_price: float = Field(ge=0, le=10_000_000, allow_inf_nan=False, description="price paid per unit")


class OrderRequest(BaseModel):
    """An order from the shop's system. Idempotent on ``order_id``. Its total (the sum of
    ``qty * unit_price``) may be at most 1,000,000,000."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "order_id": "A-1001",
                    "placed_at": "2024-05-01T10:00:00Z",
                    "lines": [{"sku": "LOFT-SOF-0001", "qty": 1, "unit_price": 1999.0}],
                }
            ]
        },
    )
    order_id: Annotated[str, StringConstraints(pattern=ORDER_ID_PATTERN)] = Field(
        description="the shop's order id, unique across the shop"
    )
    placed_at: MessageTime = Field(description="when the order was placed (with a timezone)")
    lines: list[OrderLine] = Field(min_length=1, max_length=MAX_ORDER_LINES)

    @model_validator(mode="after")
    def _total_fits(self) -> OrderRequest:
        total = sum((Decimal(str(line.unit_price)) * line.qty for line in self.lines), Decimal(0))
        if total > MAX_ORDER_TOTAL:
            raise ValueError(
                f"the order's total ({total:,.2f}) is over the most one order may total ({MAX_ORDER_TOTAL:,})"
            )
        return self


class OrderLineOut(BaseModel):
    sku: str
    qty: int
    unit_price: float


class OrderRecord(BaseModel):
    order_id: str
    placed_at: datetime
    received_at: datetime
    total: float
    lines: list[OrderLineOut]


class OrderAccepted(BaseModel):
    order_id: str
    user_identifier: str
    created: bool = Field(description="false: this order was already received (a retry); nothing changed")
    lines: int
    total: float


class OrderPage(BaseModel):
    user_identifier: str
    orders: list[OrderRecord]


# -- recommendations -------------------------------------------------------------------------


class RecommendationReason(BaseModel):
    """Why one product is recommended, as data (``kind`` and its fields) and as a sentence."""

    model_config = ConfigDict(extra="allow")
    kind: str = Field(description="co_purchase, repeat, preference, budget or popular (more kinds may come)")
    text: str = Field(
        description='e.g. "bought by 12 customers who also bought the Arlo Sofa" (a co-purchase reason never '
        "states fewer customers than LOFT_MIN_CROWD: it is left out instead)"
    )


class PathNode(BaseModel):
    """A node on the graph path behind a recommendation (other customers only as a count)."""

    label: str
    key: str
    name: str


class Recommendation(BaseModel):
    sku: str
    name: str
    category: str | None
    price: float | None
    score: float = Field(description="0..1, comparable within one answer")
    reasons: list[RecommendationReason]
    path: list[PathNode]
    path_text: str


class RecommendationsResponse(BaseModel):
    user_identifier: str
    cold_start: bool = Field(description="true when the customer has no purchases yet")
    explanation: str = Field(description='e.g. "No purchases yet: popular in your preferred styles (modern)"')
    degraded: bool = Field(
        False,
        description="true when the full recommendation could not be computed in time (or the graph was away) "
        "and this is the cheaper answer: the best sellers of the customer's categories",
    )
    degraded_reason: str | None = Field(None, description="why the answer is degraded, when it is")
    items: list[Recommendation]


# -- sessions -------------------------------------------------------------------------------


class SessionMessage(BaseModel):
    id: int
    role: Role
    speaker: str | None
    content: str
    external_id: str | None
    created_at: datetime


class Session(BaseModel):
    id: uuid.UUID
    channel: str
    started_at: datetime
    last_message_at: datetime
    messages: list[SessionMessage] = Field(description="the session's newest turns (a bounded number), in order")
    messages_cursor: str | None = Field(
        default=None,
        description="the session has older turns: pass as ?cursor= to "
        "GET /v1/sessions/{user_identifier}/{session_id}/messages; null when `messages` is the whole session",
    )


class SessionPage(BaseModel):
    user_identifier: str
    sessions: list[Session]
    next_cursor: str | None


class SessionMessagesPage(BaseModel):
    """A page of one session's turns, in order; ``next_cursor`` reads the turns before them."""

    user_identifier: str
    session_id: uuid.UUID
    messages: list[SessionMessage]
    next_cursor: str | None = Field(description="pass as ?cursor= for the turns before these; null at the start")


class SessionDeleted(BaseModel):
    """One session's transcript forgotten: its turns and what was made only from them. What
    the customer's memory learned from it (long-term memories, graph facts) stays."""

    session_id: uuid.UUID
    deleted: bool
    messages: int = Field(description="the session's turns deleted")
    passages: int = Field(description="passages of its long turns deleted")
    summaries: int = Field(description="its conversation summary (0 or 1)")
    jobs: int = Field(description="work queued about its turns or its summary, dropped")


class MessageDeleted(BaseModel):
    """One turn forgotten (e.g. a framework undoing its last one), returned as it was."""

    message: SessionMessage = Field(description="the turn as it was before it was deleted")
    passages: int = Field(description="passages of the turn deleted")
    summaries: int = Field(description="the session's summary, deleted when it was written from this turn (0 or 1)")
    jobs: int = Field(description="its ingestion, dropped if it was still queued (0 or 1)")


class StoreStatus(_Record):
    """One store's health as an admin sees it."""

    model_config = ConfigDict(extra="allow")
    ok: bool
    error: str | None = Field(default=None, description="why it did not answer (its kind, never its message)")
    version: str | None = None
    pgvector: str | None = Field(default=None, description="PostgreSQL: the pgvector extension's version")
    edition: str | None = Field(default=None, description="Neo4j: community or enterprise")
    stats_error: str | None = Field(default=None, description="why its counts are missing (the store answered)")


class EmbedderStatus(_Record):
    model_config = ConfigDict(extra="allow")
    model: str
    dim: int


class LlmStatus(_Record):
    model_config = ConfigDict(extra="allow")
    enabled: bool
    model: str | None


class StatusStats(_Record):
    """Counts per store (reused for ``LOFT_STATUS_STATS_TTL_S``) and the queue's (always fresh)."""

    model_config = ConfigDict(extra="allow")
    postgres: dict[str, int] | None = Field(default=None, description="rows per kind")
    jobs: dict[str, int] | None = Field(default=None, description="jobs per state: ready, scheduled, running, failed")
    neo4j: dict[str, int] | None = Field(default=None, description="nodes and relationships per kind")


class StatusResponse(BaseModel):
    """ok / degraded / down; the rest only for an admin key."""

    model_config = ConfigDict(extra="allow")
    status: Literal["ok", "degraded", "down"]
    stores: dict[str, StoreStatus] | None = None
    embedder: EmbedderStatus | None = None
    llm: LlmStatus | None = None
    stats: StatusStats | None = None


class ErrorResponse(BaseModel):
    error: str = Field(
        description="a stable code: validation_error, unauthorized, forbidden, not_found, conflict, gone, "
        "payload_too_large, store_unavailable, internal_error"
    )
    detail: str
    request_id: str | None = Field(default=None, description="quote it when reporting a problem")


# -- the context ---------------------------------------------------------------------------

ItemKind = Literal["profile", "preference", "purchase", "interest", "entity", "memory", "summary", "message", "turn"]


class Provenance(BaseModel):
    """Where an item came from: the messages it was derived from, the long-term memory, or
    the graph path it was read along."""

    message_ids: list[int] = Field(description="the customer's messages it was said in or derived from")
    memory_id: str | None = Field(default=None, description="the long-term memory (a memory item)")
    graph_path: str | None = Field(default=None, description="the graph path it was read along (a graph fact)")


class ContextItem(BaseModel):
    """One line of the context, with where it came from and how it scored."""

    kind: Literal[ItemKind, "recommendation"]
    section: str = Field(description="the key of the section it is listed under in ``sections``")
    text: str = Field(description="as it appears in the prompt text")
    score: float = Field(description="the fused rank score times its boosts (see score_parts)")
    score_parts: dict[str, float] | None = Field(default=None, description="with explain=true: each source's share")
    provenance: Provenance
    timestamp: datetime | None = Field(description="when it was said or became true")


class ContextResponse(BaseModel):
    """Prompt-ready context: ``text`` to put in the prompt, the same content by section, and
    every item with its provenance and score."""

    text: str
    sections: dict[str, list[str]]
    items: list[ContextItem]
    tiers: dict[str, bool] = Field(description="which tiers answered (postgres, neo4j, vectors)")
    errors: dict[str, str] = Field(description="why a tier did not answer")
    budget: int
    tokens: int
    preset: str
    took_ms: float
    timings_ms: dict[str, float] | None = Field(default=None, description="with explain=true: stage timings")


# -- erasure --------------------------------------------------------------------------------


class ErasureReceipt(BaseModel):
    """What an erasure deleted and what the re-check of both stores found afterwards."""

    receipt_id: uuid.UUID
    status: Literal["pending", "complete"] = Field(
        description="complete: both stores were re-checked and nothing of the customer is left; "
        "pending: a store was unavailable, a worker finishes the erasure when it returns"
    )
    counts: dict[str, Any] = Field(
        description="rows deleted per PostgreSQL table, nodes and relationships deleted in Neo4j, cache entries dropped"
    )
    verification: dict[str, Any] = Field(description="what the re-check found after deleting (all zeros when complete)")
    requested_at: datetime
    completed_at: datetime | None
    error: str | None = Field(description="why the erasure is still pending")


class ErasureList(BaseModel):
    receipts: list[ErasureReceipt]


# -- MCP tool results ----------------------------------------------------------------------


class MemoryAdded(BaseModel):
    session_id: uuid.UUID
    message_id: int
    queued: bool = Field(description="true: the worker files it into every tier shortly (facts, graph, memories)")


class SearchResults(BaseModel):
    query: str
    results: list[ContextItem] = Field(description="best first; provenance names the messages and memory behind each")
    tiers: dict[str, bool] = Field(description="which stores answered (false: answered without that store)")


class Recommendations(BaseModel):
    available: bool
    detail: str | None = None
    result: dict[str, Any] | None = Field(default=None, description="products, each with its reasons")


class ErasureResult(BaseModel):
    receipt_id: uuid.UUID
    status: Literal["pending", "complete"]
    counts: dict[str, Any]
    error: str | None


# -- privacy: the audit trail, consent, export ---------------------------------------------------

AuditAction = Literal["context", "export", "erase", "consent", "delete_memory"]


class AuditEntry(BaseModel):
    """One audited action on one customer's data."""

    id: int
    at: datetime
    action: AuditAction
    key_name: str = Field(description="the API key's name ('cli' for the command line, 'stdio' for a local MCP server)")
    key_role: str
    subject_hash: str = Field(
        description="the customer, as erasure receipts name them: HMAC-SHA256 of the identifier under the "
        "erasure key (the identifier itself is never stored)"
    )
    request_id: str | None
    detail: dict[str, Any] = Field(description="what the action was about (a receipt id, a mode, a memory id)")


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    next_cursor: str | None = Field(description="pass as cursor for older entries (with the same filters)")


class ConsentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: MemoryMode = Field(
        description="full: every turn is remembered (graph, memories, summaries); session: turns are kept for the "
        "session's context only and removed once it goes idle, nothing is extracted; off: turns are answered and "
        "not stored beyond the reply"
    )


class Consent(BaseModel):
    user_identifier: str
    mode: MemoryMode
    receipt: dict[str, Any] | None = Field(
        default=None,
        description="lowering the mode erases what the lower mode would not have kept: that erasure's receipt",
    )


class ExportGraphManifest(BaseModel):
    nodes: int
    relationships: int
    labels: dict[str, int] = Field(description="nodes per label (Customer, Entity)")


class ExportManifest(BaseModel):
    """What the export holds, under the same keys as the erasure receipt's ``counts``."""

    postgres: dict[str, int] = Field(description="rows per table (the erasure's tables, then jobs)")
    neo4j: ExportGraphManifest


class ExportNode(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(description="Neo4j element id (relationships refer to it)")
    labels: list[str]
    properties: dict[str, Any] = Field(description="every property but vectors; source_message_ids name messages")


class ExportRelationship(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    type: str
    start: str = Field(description="element id of the node it leaves")
    end: str = Field(description="element id of the node it reaches")
    start_labels: list[str] | None = Field(default=None, description="for a relationship arriving at the customer")
    end_labels: list[str] | None = Field(default=None, description="for a relationship leaving the customer")
    properties: dict[str, Any]


class ExportGraph(BaseModel):
    nodes: list[ExportNode]
    relationships: list[ExportRelationship]


class CustomerExport(BaseModel):
    """Everything held about one customer in both stores (``GET /memory/user/{id}/export``)."""

    format: Literal["loft-export/1"]
    user_identifier: str
    exported_at: datetime
    omitted: dict[str, list[str]] = Field(
        description="columns left out per table: derived search data (embeddings, full-text vectors, packed "
        "caches), computed from the exported text"
    )
    postgres: dict[str, list[dict[str, Any]]] = Field(
        description="rows per table, every column but the omitted ones: users (profile, memory mode), sessions, "
        "messages, message_passages (offsets into a message), long_term_memories, memory_events (their history), "
        "conversation_summaries, orders, order_lines, user_terms, graph_snapshots, jobs (queued work)"
    )
    neo4j: ExportGraph
    manifest: ExportManifest


class MemoryModeResult(BaseModel):
    mode: MemoryMode
    erased: ErasureResult | None = Field(
        default=None, description="lowering the mode erased what it would not have kept: that erasure"
    )
