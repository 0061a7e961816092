"""The OpenAI Agents SDK over the service's memory (extra ``loft-memory[agents]``).

    from agents import Agent, Runner
    from loft_memory import AsyncLoftClient
    from loft_memory.integrations.agents import LoftSession, context_tool

    loft = AsyncLoftClient("http://127.0.0.1:8001", api_key="…")
    agent = Agent(name="Shop assistant", tools=[context_tool(loft, "sarah")])
    result = await Runner.run(agent, "Which sofa would suit me?", session=LoftSession("web-42", loft, "sarah"))

:class:`LoftSession` implements the SDK's ``Session`` protocol on one of the customer's
sessions: the conversation the SDK keeps is the service's transcript, and the customer's
turns are filed into their memory like any other. :func:`context_tool` is a function tool
that gives the agent the customer's context for a question. Both need only the client and
``openai-agents``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any, cast

from agents import FunctionTool, RunContextWrapper, function_tool
from agents.items import TResponseInputItem
from agents.memory import SessionSettings

from loft_memory.client import ApiError, AsyncLoftClient
from loft_memory.integrations import TurnPages, missing, session_uuid
from loft_memory.models import ImportMessage, SessionMessage

ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


def item_text(content: object) -> str:
    """The text of a message item's content: a string, or its text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part["text"]) for part in content if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return ""


def to_turn(item: TResponseInputItem) -> ImportMessage | None:
    """An input item as a turn of the session: messages (user, assistant, system and
    developer) with text. Tool calls, their outputs and reasoning items are the run's
    working, not the customer's conversation, and are not stored (``None``)."""
    fields = cast(Mapping[str, Any], item)
    role = ROLES.get(str(fields.get("role")))
    if role is None or fields.get("type", "message") != "message":
        return None
    text = item_text(fields.get("content"))
    if not text.strip():
        return None
    return ImportMessage.model_validate({"role": role, "content": text})


def to_item(turn: SessionMessage) -> TResponseInputItem:
    """A turn of the session as an input item the SDK sends back to the model."""
    return cast(TResponseInputItem, {"role": turn.role, "content": turn.content})


class LoftSession:
    """An Agents SDK session that is one of the customer's sessions in the service.

    ``session_id`` is the session's UUID, or any name (mapped to the same session each
    time). ``get_items`` reads the newest turns (``limit`` of them, or all up to
    ``max_items``) as ``{"role", "content"}`` items; ``add_items`` imports the run's messages
    in one request; ``pop_item`` deletes the newest turn and returns it; ``clear_session``
    deletes the session's transcript (what the customer's memory learned from it stays).
    """

    def __init__(
        self,
        session_id: str,
        client: AsyncLoftClient,
        user: str,
        *,
        channel: str = "agents",
        max_items: int = 1000,
        session_settings: SessionSettings | None = None,
    ) -> None:
        self.session_id = session_id
        self.client = client
        self.user = user
        self.session_uuid: uuid.UUID = session_uuid(user, session_id)
        self.channel = channel
        self.max_items = max_items
        self.session_settings = session_settings

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        pages = TurnPages(limit, self.max_items)
        while (ask := pages.ask()) is not None:
            try:
                pages.add(await self.client.session_messages(self.user, self.session_uuid, cursor=ask[0], limit=ask[1]))
            except ApiError as exc:
                pages.failed(exc)
        return [to_item(t) for t in pages.turns]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        turns = [turn for turn in map(to_turn, items) if turn is not None]
        if turns:
            await self.client.import_messages(self.user, turns, session_id=self.session_uuid, channel=self.channel)

    async def pop_item(self) -> TResponseInputItem | None:
        try:
            newest = await self.client.session_messages(self.user, self.session_uuid, limit=1)
            if not newest.messages:
                return None
            gone = await self.client.delete_message(self.user, self.session_uuid, newest.messages[-1].id)
        except ApiError as exc:
            if missing(exc):  # no such session, or the turn went meanwhile
                return None
            raise
        return to_item(gone.message)

    async def clear_session(self) -> None:
        try:
            await self.client.delete_session(self.user, self.session_uuid)
        except ApiError as exc:
            if not missing(exc):
                raise


def context_tool(
    client: AsyncLoftClient,
    user: str | Callable[[RunContextWrapper[Any]], str],
    *,
    budget: int = 1000,
    preset: str | None = None,
    name: str = "get_context",
) -> FunctionTool:
    """A function tool giving the agent the customer's context for a question.

    The customer is never an argument the model fills in: ``user`` is the customer's
    identifier, or a function of the run's context (``Runner.run(..., context=…)``) that
    returns it, so one agent can serve every customer.
    """

    async def get_context(ctx: RunContextWrapper[Any], query: str) -> str:
        """What the memory knows about the customer that bears on a question: their name,
        preferences, purchases, earlier conversations and recommended products, with dates.

        Args:
            query: the question or topic to look up, in the customer's words.
        """
        who = user if isinstance(user, str) else user(ctx)
        context = await client.context(who, query, budget=budget, preset=preset)
        return context.text or "Nothing is remembered about this customer yet."

    return function_tool(get_context, name_override=name)
