"""LangChain over the service's memory (extra ``loft-memory[langchain]``).

    from loft_memory import LoftClient
    from loft_memory.integrations.langchain import LoftChatMessageHistory, LoftRetriever

    loft = LoftClient("http://127.0.0.1:8001", api_key="…")
    history = LoftChatMessageHistory(loft, "sarah", session_id="web-42")
    history.add_user_message("I love velvet sofas")
    docs = LoftRetriever(client=loft, user="sarah").invoke("what sofas does she like?")

:class:`LoftChatMessageHistory` is a ``BaseChatMessageHistory`` whose messages are one of
the customer's sessions (``RunnableWithMessageHistory`` reads and extends it); the turns it
adds are filed into the customer's memory like any other. :class:`LoftRetriever` is a
``BaseRetriever`` whose documents are the context's items, with their provenance in
``metadata``. Both need only the client and ``langchain-core``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.retrievers import BaseRetriever

from loft_memory.client import ApiError, AsyncLoftClient, LoftClient
from loft_memory.integrations import TurnPages, missing, session_uuid
from loft_memory.models import ContextItem, ContextResponse, ImportMessage, SessionMessage

ROLES: dict[str, str] = {"human": "user", "ai": "assistant", "system": "system"}


def to_turn(message: BaseMessage) -> ImportMessage | None:
    """A LangChain message as a turn of the session: human, AI and system messages with
    text. Tool and function messages, and an AI message that only calls tools, are not part
    of the customer's conversation and are not stored (``None``)."""
    role = ROLES.get(message.type)
    text = message.text
    if role is None or not text.strip():
        return None
    return ImportMessage.model_validate(
        {"role": role, "content": text, "external_id": message.id}  # a message sent twice is stored once
    )


def to_message(turn: SessionMessage) -> BaseMessage:
    """A turn of the session as a LangChain message; its ``id`` is the turn's id."""
    if turn.role == "user":
        return HumanMessage(content=turn.content, id=str(turn.id))
    if turn.role == "assistant":
        return AIMessage(content=turn.content, id=str(turn.id))
    return SystemMessage(content=turn.content, id=str(turn.id))


class LoftChatMessageHistory(BaseChatMessageHistory):
    """A LangChain chat history that is one of the customer's sessions in the service.

    ``session_id`` is the session's UUID, or any name (mapped to the same session each
    time). ``messages`` reads the newest ``max_messages`` turns, in order; ``add_messages``
    imports the messages in one request; ``clear`` deletes the session's transcript (what the
    customer's memory learned from it stays). The asynchronous methods use ``async_client``
    when one is given.
    """

    def __init__(
        self,
        client: LoftClient,
        user: str,
        session_id: str | uuid.UUID,
        *,
        async_client: AsyncLoftClient | None = None,
        channel: str = "langchain",
        max_messages: int = 1000,
    ) -> None:
        self.client = client
        self.async_client = async_client
        self.user = user
        self.session_id = session_uuid(user, session_id)
        self.channel = channel
        self.max_messages = max_messages

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]  # read from the service each time
        pages = TurnPages(None, self.max_messages)
        while (ask := pages.ask()) is not None:
            try:
                pages.add(self.client.session_messages(self.user, self.session_id, cursor=ask[0], limit=ask[1]))
            except ApiError as exc:
                pages.failed(exc)
        return [to_message(t) for t in pages.turns]

    async def aget_messages(self) -> list[BaseMessage]:
        if self.async_client is None:
            return await super().aget_messages()
        pages = TurnPages(None, self.max_messages)
        while (ask := pages.ask()) is not None:
            try:
                page = await self.async_client.session_messages(self.user, self.session_id, cursor=ask[0], limit=ask[1])
                pages.add(page)
            except ApiError as exc:
                pages.failed(exc)
        return [to_message(t) for t in pages.turns]

    def _turns(self, messages: Sequence[BaseMessage]) -> list[ImportMessage]:
        return [turn for turn in map(to_turn, messages) if turn is not None]

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        if turns := self._turns(messages):
            self.client.import_messages(self.user, turns, session_id=self.session_id, channel=self.channel)

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        if self.async_client is None:
            return await super().aadd_messages(messages)
        if turns := self._turns(messages):
            await self.async_client.import_messages(self.user, turns, session_id=self.session_id, channel=self.channel)
        return None

    def clear(self) -> None:
        try:
            self.client.delete_session(self.user, self.session_id)
        except ApiError as exc:
            if not missing(exc):
                raise

    async def aclear(self) -> None:
        if self.async_client is None:
            return await super().aclear()
        try:
            await self.async_client.delete_session(self.user, self.session_id)
        except ApiError as exc:
            if not missing(exc):
                raise
        return None


def to_document(item: ContextItem, user: str) -> Document:
    """A context item as a Document: its prompt text, and where it came from in ``metadata``
    (``message_ids``, ``memory_id``, ``graph_path``) with its kind, section, score and time."""
    metadata: dict[str, Any] = {
        "user_identifier": user,
        "kind": item.kind,
        "section": item.section,
        "score": item.score,
        "timestamp": item.timestamp.isoformat() if item.timestamp else None,
        "message_ids": list(item.provenance.message_ids),
        "memory_id": item.provenance.memory_id,
        "graph_path": item.provenance.graph_path,
    }
    return Document(page_content=item.text, metadata=metadata)


class LoftRetriever(BaseRetriever):
    """The customer's context for a question, as LangChain Documents: one per context item,
    best first, within ``budget`` tokens (``preset`` and ``session_id`` as for
    ``GET /memory/context``). Asynchronous calls use ``async_client`` when one is given."""

    client: LoftClient
    async_client: AsyncLoftClient | None = None
    user: str
    budget: int = 1000
    preset: str | None = None
    session_id: uuid.UUID | None = None

    def _documents(self, context: ContextResponse) -> list[Document]:
        return [to_document(item, self.user) for item in context.items]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return self._documents(
            self.client.context(self.user, query, budget=self.budget, preset=self.preset, session_id=self.session_id)
        )

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        if self.async_client is None:
            return await super()._aget_relevant_documents(query, run_manager=run_manager)
        context = await self.async_client.context(
            self.user, query, budget=self.budget, preset=self.preset, session_id=self.session_id
        )
        return self._documents(context)
