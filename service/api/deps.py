"""FastAPI dependencies: the process's core, the refusal while an erasure is pending, and
the query-parameter sets of routes that take many (parsed into one typed value, so their
handler only checks who may call, calls the core and shapes the answer)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Query, Request

from loft_memory.models import (
    MAX_QUERY_CHARS,
    QUESTION_TIME_EXAMPLES,
    USER_ID_PATTERN,
    AuditAction,
    QuestionTime,
    SafeText,
)
from service.core.memory import Memory
from service.retrieval import PRESETS, Retriever
from service.runtime import Runtime


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def core(request: Request) -> Memory:
    """The process's core, which every route calls (made in the app's lifespan)."""
    found: Memory = request.app.state.memory
    return found


def retriever(request: Request) -> Retriever:
    """The process's retriever (made in the app's lifespan)."""
    retr: Retriever = request.app.state.retriever
    return retr


async def not_being_erased(request: Request) -> None:
    """A route about one customer (``{user_identifier}`` in its path) answers 409 while
    that customer's erasure is pending (:meth:`Memory.refuse_while_erasing`). Put after the
    access check, so a caller without the right key learns nothing."""
    user = request.path_params.get("user_identifier")
    if user is not None:
        await core(request).refuse_while_erasing(user)


# -- query-parameter sets --------------------------------------------------------------------


@dataclass(frozen=True)
class ContextQuery:
    """What ``GET /memory/context/{user_identifier}`` is asked."""

    query: str
    budget: int
    session_id: uuid.UUID | None
    preset: str
    explain: bool
    as_of: datetime | None


def context_query(
    query: Annotated[
        SafeText,
        Query(
            max_length=MAX_QUERY_CHARS,
            description="the customer's message or question",
            examples=["which sofa did I like?", "what did I order for 9999-12-31?", "and on 0001-01-01?"],
        ),
    ] = "",
    budget: int = Query(1000, ge=50, le=16000, description="tokens (characters / 4)"),
    session_id: uuid.UUID | None = Query(None, description="the current session: its recent turns are included"),
    preset: str = Query("default", description=f"retrieval preset: {', '.join(PRESETS)}"),
    explain: bool = Query(False, description="include each item's score parts"),
    as_of: Annotated[
        QuestionTime | None,
        Query(
            description="when the question is asked (ISO 8601 with a time zone, between 1970-01-01 and tomorrow; "
            "default now): periods and relative dates it names ('last May', 'two weeks ago') are resolved against "
            "it, in its time zone, and recency counts from it",
            examples=QUESTION_TIME_EXAMPLES,
        ),
    ] = None,
) -> ContextQuery:
    return ContextQuery(query, budget, session_id, preset, explain, as_of)


@dataclass(frozen=True)
class AuditQuery:
    """Which entries of the audit trail ``GET /memory/audit`` is asked for."""

    customer: str | None
    action: AuditAction | None
    since: datetime | None
    until: datetime | None
    limit: int
    cursor: str | None


def audit_query(
    customer: str | None = Query(
        None,
        pattern=USER_ID_PATTERN,
        description="only this customer's entries (hashed by the server with the erasure key; never stored in clear)",
    ),
    action: AuditAction | None = Query(None, description="only entries of this action"),
    since: datetime | None = Query(None, description="entries at or after this time (ISO 8601 with a time zone)"),
    until: datetime | None = Query(None, description="entries before this time (ISO 8601 with a time zone)"),
    limit: int = Query(100, ge=1, le=500),
    cursor: str | None = Query(None, max_length=200, description="next_cursor of the previous page"),
) -> AuditQuery:
    return AuditQuery(customer, action, since, until, limit, cursor)
