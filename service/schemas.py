"""Request and response models of the REST API; validation happens here, at the edge."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

MAX_MESSAGE_BYTES = 32 * 1024
USER_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,128}$"

UserIdentifier = Annotated[str, StringConstraints(pattern=USER_ID_PATTERN)]
Role = Literal["user", "assistant", "system"]


def _message_text(value: str) -> str:
    if not value.strip():
        raise ValueError("message must not be empty or whitespace")
    if len(value.encode("utf-8")) > MAX_MESSAGE_BYTES:
        raise ValueError(f"message is larger than {MAX_MESSAGE_BYTES // 1024} KB")
    if "\x00" in value:
        raise ValueError("message must not contain NUL characters")
    return value


MessageText = Annotated[str, AfterValidator(_message_text)]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp needs a timezone (e.g. 2024-05-01T10:00:00Z)")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_identifier: UserIdentifier
    message: MessageText
    session_id: uuid.UUID | None = None
    budget: int = Field(default=1000, ge=50, le=16000, description="context budget in tokens (characters / 4)")


class ChatResponse(BaseModel):
    session_id: uuid.UUID
    message_id: int
    reply: str
    reply_message_id: int
    context: dict[str, Any]
    llm: bool


class ImportMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    content: MessageText
    created_at: AwareDatetime | None = None
    speaker: Annotated[str, StringConstraints(max_length=128)] | None = None
    external_id: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    metadata: dict[str, Any] | None = None


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
    query: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    user_identifier: UserIdentifier
    limit: int = Field(default=10, ge=1, le=100)


# -- long-term memories ---------------------------------------------------------------------


class LongTermMemory(BaseModel):
    """One long-term memory: a standalone statement derived from the customer's messages."""

    id: uuid.UUID
    kind: Literal["fact", "preference", "event", "insight", "pattern"]
    content: str
    subject: str | None = Field(description="what it is about, e.g. 'preference:material'; a newer memory "
                                            "of the same subject that replaces it supersedes it")
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
    id: uuid.UUID
    deleted: bool
    events_scrubbed: int = Field(description="history entries whose text was removed with it")


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
