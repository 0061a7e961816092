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
