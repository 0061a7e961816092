"""Adapters that put the service's memory into chat frameworks, over the client alone.

- :mod:`loft_memory.integrations.langchain` (extra ``loft-memory[langchain]``): a LangChain
  chat message history backed by a session, and a retriever over the context's items.
- :mod:`loft_memory.integrations.agents` (extra ``loft-memory[agents]``): an OpenAI Agents
  SDK session backed by a session, and a ``get_context`` function tool.

Importing this package needs neither framework; each module needs only its own.
"""

from __future__ import annotations

import uuid

from loft_memory.client import ApiError
from loft_memory.models import SessionMessage, SessionMessagesPage

# a framework's own session name (any string) maps to one service session per customer
SESSION_NAMESPACE = uuid.UUID("6f1c2b0e-4d2a-5b8e-9c41-7a3e5d0f2b19")
PAGE = 200  # the service's largest page of a session's messages


def session_uuid(user: str, session_id: str | uuid.UUID) -> uuid.UUID:
    """The service's session id for a framework's session name: a UUID is used as it is,
    any other name maps to the same UUID every time (per customer, so two customers'
    sessions named alike never meet)."""
    if isinstance(session_id, uuid.UUID):
        return session_id
    try:
        return uuid.UUID(session_id)
    except ValueError:
        return uuid.uuid5(SESSION_NAMESPACE, f"{user}\n{session_id}")


class TurnPages:
    """Reads a session's newest ``limit`` turns (all of them, at most ``max_turns``) a page at a
    time from the newest: ``ask()`` says which page to read next (``None`` when done),
    ``add(page)`` takes it, ``turns`` are those read, in order."""

    def __init__(self, limit: int | None, max_turns: int, page: int = PAGE) -> None:
        self.page = page
        self.wanted = max_turns if limit is None else max(0, min(limit, max_turns))
        self.pages: list[list[SessionMessage]] = []
        self.cursor: str | None = None
        self.done = False

    @property
    def got(self) -> int:
        return sum(len(p) for p in self.pages)

    def ask(self) -> tuple[str | None, int] | None:
        if self.done or self.got >= self.wanted:
            return None
        return self.cursor, min(self.page, self.wanted - self.got)

    def add(self, page: SessionMessagesPage) -> None:
        self.pages.append(page.messages)
        self.cursor = page.next_cursor
        self.done = self.cursor is None or not page.messages

    def failed(self, exc: ApiError) -> None:
        """A session that does not exist (yet) has no turns; any other error is raised."""
        if not (missing(exc) and not self.pages):
            raise exc
        self.done = True

    @property
    def turns(self) -> list[SessionMessage]:
        return [m for page in reversed(self.pages) for m in page]


def missing(exc: ApiError) -> bool:
    """The session (or turn) is not there: clearing it again is not an error."""
    return exc.status == 404
