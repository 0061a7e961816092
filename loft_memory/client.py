"""A typed Python client for the LOFT memory API (httpx; sync and async).

    from loft_memory import LoftClient

    with LoftClient("http://127.0.0.1:8001", api_key="…") as loft:
        turn = loft.chat("sarah", "Hi, my name is Sarah and I love modern furniture")
        ctx = loft.context("sarah", "what does she like?", budget=500)
        print(ctx.text, [item.provenance for item in ctx.items])

Every answer is parsed into the API's own Pydantic model (``loft_memory.models``), so a
change of the API's shape breaks here, loudly, rather than in a caller's dict lookups.
Every error is an :class:`ApiError` with the API's ``error`` code, ``detail``, the HTTP
status and the ``request_id`` to quote. Each call is described once (:class:`Call`);
:class:`LoftClient` and :class:`AsyncLoftClient` only differ in how they send it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, Generic, TypeVar

import httpx
from pydantic import BaseModel

from loft_memory.models import (
    AuditPage,
    ChatResponse,
    Consent,
    ContextResponse,
    CustomerExport,
    CustomerSummary,
    EntitySearchResponse,
    ErasureReceipt,
    ImportMessage,
    ImportResponse,
    LongTermMemory,
    MemoryDeleted,
    MemoryHistory,
    MemoryMode,
    MemoryPage,
    MessageDeleted,
    RecommendationsResponse,
    SessionDeleted,
    SessionMessagesPage,
    SessionPage,
    StatusResponse,
    WhoAmI,
)

M = TypeVar("M", bound=BaseModel)
V = TypeVar("V")
QueryValue = str | int | float | bool  # a query parameter's value


class ApiError(Exception):
    """An error answer of the API: ``{error, detail, request_id}`` and its HTTP status."""

    def __init__(self, status: int, error: str, detail: str, request_id: str | None) -> None:
        super().__init__(f"{status} {error}: {detail} (request id {request_id})")
        self.status = status
        self.error = error
        self.detail = detail
        self.request_id = request_id


@dataclass(frozen=True)
class Call(Generic[M]):
    """One API call: how to send it, which statuses are answers, and their model."""

    method: str
    path: str
    model: type[M]
    params: Mapping[str, QueryValue] | None = None
    json: Any = None
    ok: tuple[int, ...] = (200,)
    headers: dict[str, str] = field(default_factory=dict)

    def parse(self, response: httpx.Response) -> M:
        if response.status_code not in self.ok:
            raise _error(response)
        return self.model.model_validate_json(response.content)


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return ApiError(
        response.status_code,
        str(body.get("error", "error")),
        str(body.get("detail", response.text[:500])),
        body.get("request_id") or response.headers.get("x-request-id"),
    )


def _drop_none(values: Mapping[str, V | None]) -> dict[str, V]:
    return {k: v for k, v in values.items() if v is not None}


def _query(values: Mapping[str, QueryValue | None]) -> dict[str, QueryValue]:
    """Query parameters, without those not given."""
    return _drop_none(values)


class Calls:
    """The API's calls, described once (used by both clients)."""

    @staticmethod
    def chat(
        user: str,
        message: str,
        *,
        session_id: uuid.UUID | None = None,
        budget: int = 1000,
        message_id: str | None = None,
    ) -> Call[ChatResponse]:
        body = _drop_none(
            {
                "user_identifier": user,
                "message": message,
                "session_id": str(session_id) if session_id else None,
                "budget": budget,
                "message_id": message_id,
            }
        )
        return Call("POST", "/v1/chat", ChatResponse, json=body)

    @staticmethod
    def import_messages(
        user: str,
        messages: Sequence[ImportMessage | dict[str, Any]],
        *,
        session_id: uuid.UUID | None = None,
        channel: str | None = None,
    ) -> Call[ImportResponse]:
        rows = [m.model_dump(mode="json", exclude_none=True) if isinstance(m, BaseModel) else dict(m) for m in messages]
        body = _drop_none({"messages": rows, "session_id": str(session_id) if session_id else None, "channel": channel})
        return Call("POST", f"/v1/sessions/{user}/messages", ImportResponse, json=body, ok=(201,))

    @staticmethod
    def sessions(user: str, *, limit: int = 20, cursor: str | None = None) -> Call[SessionPage]:
        return Call("GET", f"/v1/sessions/{user}", SessionPage, params=_query({"limit": limit, "cursor": cursor}))

    @staticmethod
    def session_messages(
        user: str, session_id: uuid.UUID | str, *, limit: int = 50, cursor: str | None = None
    ) -> Call[SessionMessagesPage]:
        return Call(
            "GET",
            f"/v1/sessions/{user}/{session_id}/messages",
            SessionMessagesPage,
            params=_query({"limit": limit, "cursor": cursor}),
        )

    @staticmethod
    def delete_session(user: str, session_id: uuid.UUID | str) -> Call[SessionDeleted]:
        return Call("DELETE", f"/v1/sessions/{user}/{session_id}", SessionDeleted)

    @staticmethod
    def delete_message(user: str, session_id: uuid.UUID | str, message_id: int) -> Call[MessageDeleted]:
        return Call("DELETE", f"/v1/sessions/{user}/{session_id}/messages/{message_id}", MessageDeleted)

    @staticmethod
    def context(
        user: str,
        query: str = "",
        *,
        budget: int = 1000,
        session_id: uuid.UUID | None = None,
        preset: str | None = None,
        explain: bool = False,
        as_of: datetime | None = None,
    ) -> Call[ContextResponse]:
        params = _query(
            {
                "query": query,
                "budget": budget,
                "session_id": str(session_id) if session_id else None,
                "preset": preset,
                "explain": "true" if explain else None,
                "as_of": as_of.isoformat() if as_of else None,
            }
        )
        return Call("GET", f"/memory/context/{user}", ContextResponse, params=params)

    @staticmethod
    def summary(user: str, *, include_history: bool = False) -> Call[CustomerSummary]:
        params = {"include_history": "true"} if include_history else None
        return Call("GET", f"/memory/user/{user}/summary", CustomerSummary, params=params)

    @staticmethod
    def search_entities(user: str, query: str, *, limit: int = 10) -> Call[EntitySearchResponse]:
        body = {"query": query, "user_identifier": user, "limit": limit}
        return Call("POST", "/memory/search/entities", EntitySearchResponse, json=body)

    @staticmethod
    def recommendations(
        user: str, *, limit: int = 10, category: str | None = None, max_price: float | None = None
    ) -> Call[RecommendationsResponse]:
        params = _query({"limit": limit, "category": category, "max_price": max_price})
        return Call("GET", f"/memory/user/{user}/recommendations", RecommendationsResponse, params=params)

    @staticmethod
    def memories(
        user: str, *, limit: int = 50, cursor: str | None = None, include_superseded: bool = False
    ) -> Call[MemoryPage]:
        params = _query(
            {"limit": limit, "cursor": cursor, "include_superseded": "true" if include_superseded else None}
        )
        return Call("GET", f"/memory/user/{user}/memories", MemoryPage, params=params)

    @staticmethod
    def memory(user: str, memory_id: uuid.UUID | str) -> Call[LongTermMemory]:
        return Call("GET", f"/memory/user/{user}/memories/{memory_id}", LongTermMemory)

    @staticmethod
    def memory_history(user: str, memory_id: uuid.UUID | str) -> Call[MemoryHistory]:
        return Call("GET", f"/memory/user/{user}/memories/{memory_id}/history", MemoryHistory)

    @staticmethod
    def delete_memory(user: str, memory_id: uuid.UUID | str) -> Call[MemoryDeleted]:
        return Call("DELETE", f"/memory/user/{user}/memories/{memory_id}", MemoryDeleted)

    @staticmethod
    def erase(user: str) -> Call[ErasureReceipt]:
        return Call("DELETE", f"/memory/user/{user}", ErasureReceipt, ok=(200, 202))

    @staticmethod
    def audit(
        *,
        customer: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Call[AuditPage]:
        params = _query(
            {
                "customer": customer,
                "action": action,
                "since": since.isoformat() if since else None,
                "until": until.isoformat() if until else None,
                "limit": limit,
                "cursor": cursor,
            }
        )
        return Call("GET", "/memory/audit", AuditPage, params=params)

    @staticmethod
    def export(user: str) -> Call[CustomerExport]:
        return Call("GET", f"/memory/user/{user}/export", CustomerExport)

    @staticmethod
    def consent(user: str) -> Call[Consent]:
        return Call("GET", f"/memory/user/{user}/consent", Consent)

    @staticmethod
    def set_consent(user: str, mode: MemoryMode) -> Call[Consent]:
        return Call("PUT", f"/memory/user/{user}/consent", Consent, json={"mode": mode}, ok=(200, 202))

    @staticmethod
    def status() -> Call[StatusResponse]:
        return Call("GET", "/memory/status", StatusResponse, ok=(200, 503))

    @staticmethod
    def whoami() -> Call[WhoAmI]:
        return Call("GET", "/v1/whoami", WhoAmI)


def _headers(api_key: str | None, headers: dict[str, str] | None) -> dict[str, str]:
    out = dict(headers or {})
    if api_key:
        out["Authorization"] = f"Bearer {api_key}"
    return out


class LoftClient:
    """Synchronous client. ``send(call)`` sends any :class:`Call`; the methods are shorthands."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        headers: dict[str, str] | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self.http = http or httpx.Client(base_url=base_url, timeout=timeout, headers=_headers(api_key, headers))

    def __enter__(self) -> LoftClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def send(self, call: Call[M]) -> M:
        response = self.http.request(call.method, call.path, params=call.params, json=call.json, headers=call.headers)
        return call.parse(response)

    def chat(
        self,
        user: str,
        message: str,
        *,
        session_id: uuid.UUID | None = None,
        budget: int = 1000,
        message_id: str | None = None,
    ) -> ChatResponse:
        return self.send(Calls.chat(user, message, session_id=session_id, budget=budget, message_id=message_id))

    def import_messages(
        self,
        user: str,
        messages: Sequence[ImportMessage | dict[str, Any]],
        *,
        session_id: uuid.UUID | None = None,
        channel: str | None = None,
    ) -> ImportResponse:
        return self.send(Calls.import_messages(user, messages, session_id=session_id, channel=channel))

    def sessions(self, user: str, *, limit: int = 20, cursor: str | None = None) -> SessionPage:
        return self.send(Calls.sessions(user, limit=limit, cursor=cursor))

    def session_messages(
        self, user: str, session_id: uuid.UUID | str, *, limit: int = 50, cursor: str | None = None
    ) -> SessionMessagesPage:
        return self.send(Calls.session_messages(user, session_id, limit=limit, cursor=cursor))

    def delete_session(self, user: str, session_id: uuid.UUID | str) -> SessionDeleted:
        return self.send(Calls.delete_session(user, session_id))

    def delete_message(self, user: str, session_id: uuid.UUID | str, message_id: int) -> MessageDeleted:
        return self.send(Calls.delete_message(user, session_id, message_id))

    def context(
        self,
        user: str,
        query: str = "",
        *,
        budget: int = 1000,
        session_id: uuid.UUID | None = None,
        preset: str | None = None,
        explain: bool = False,
        as_of: datetime | None = None,
    ) -> ContextResponse:
        return self.send(
            Calls.context(
                user, query, budget=budget, session_id=session_id, preset=preset, explain=explain, as_of=as_of
            )
        )

    def summary(self, user: str, *, include_history: bool = False) -> CustomerSummary:
        return self.send(Calls.summary(user, include_history=include_history))

    def search_entities(self, user: str, query: str, *, limit: int = 10) -> EntitySearchResponse:
        return self.send(Calls.search_entities(user, query, limit=limit))

    def recommendations(
        self, user: str, *, limit: int = 10, category: str | None = None, max_price: float | None = None
    ) -> RecommendationsResponse:
        """Products to suggest, with reasons; ``degraded`` says when it is the cheaper answer."""
        return self.send(Calls.recommendations(user, limit=limit, category=category, max_price=max_price))

    def memories(
        self, user: str, *, limit: int = 50, cursor: str | None = None, include_superseded: bool = False
    ) -> MemoryPage:
        return self.send(Calls.memories(user, limit=limit, cursor=cursor, include_superseded=include_superseded))

    def memory(self, user: str, memory_id: uuid.UUID | str) -> LongTermMemory:
        return self.send(Calls.memory(user, memory_id))

    def memory_history(self, user: str, memory_id: uuid.UUID | str) -> MemoryHistory:
        return self.send(Calls.memory_history(user, memory_id))

    def delete_memory(self, user: str, memory_id: uuid.UUID | str) -> MemoryDeleted:
        return self.send(Calls.delete_memory(user, memory_id))

    def erase(self, user: str) -> ErasureReceipt:
        return self.send(Calls.erase(user))

    def export(self, user: str) -> CustomerExport:
        """Everything held about ``user``, parsed (admin keys, or the customer's own key). For
        a large customer, :meth:`export_to` writes the document as it arrives instead."""
        return self.send(Calls.export(user))

    def export_to(self, user: str, out: BinaryIO) -> int:
        """Stream the export document of ``user`` into ``out``; returns the bytes written."""
        call = Calls.export(user)
        with self.http.stream(call.method, call.path) as response:
            if response.status_code != 200:
                response.read()
                raise _error(response)
            written = 0
            for chunk in response.iter_bytes():
                out.write(chunk)
                written += len(chunk)
        return written

    def consent(self, user: str) -> Consent:
        return self.send(Calls.consent(user))

    def set_consent(self, user: str, mode: MemoryMode) -> Consent:
        """Set the customer's memory mode ('full', 'session', 'off'); lowering it erases what the lower
        mode would not have kept (the answer carries that erasure's receipt)."""
        return self.send(Calls.set_consent(user, mode))

    def audit(
        self,
        *,
        customer: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> AuditPage:
        """One page of the audit trail (admin keys), newest first."""
        return self.send(
            Calls.audit(customer=customer, action=action, since=since, until=until, limit=limit, cursor=cursor)
        )

    def status(self) -> StatusResponse:
        return self.send(Calls.status())

    def whoami(self) -> WhoAmI:
        return self.send(Calls.whoami())


class AsyncLoftClient:
    """Asynchronous client (``httpx.AsyncClient``); the same calls as :class:`LoftClient`."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        headers: dict[str, str] | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.http = http or httpx.AsyncClient(base_url=base_url, timeout=timeout, headers=_headers(api_key, headers))

    async def __aenter__(self) -> AsyncLoftClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def send(self, call: Call[M]) -> M:
        response = await self.http.request(
            call.method, call.path, params=call.params, json=call.json, headers=call.headers
        )
        return call.parse(response)

    async def chat(
        self,
        user: str,
        message: str,
        *,
        session_id: uuid.UUID | None = None,
        budget: int = 1000,
        message_id: str | None = None,
    ) -> ChatResponse:
        return await self.send(Calls.chat(user, message, session_id=session_id, budget=budget, message_id=message_id))

    async def import_messages(
        self,
        user: str,
        messages: Sequence[ImportMessage | dict[str, Any]],
        *,
        session_id: uuid.UUID | None = None,
        channel: str | None = None,
    ) -> ImportResponse:
        return await self.send(Calls.import_messages(user, messages, session_id=session_id, channel=channel))

    async def sessions(self, user: str, *, limit: int = 20, cursor: str | None = None) -> SessionPage:
        return await self.send(Calls.sessions(user, limit=limit, cursor=cursor))

    async def session_messages(
        self, user: str, session_id: uuid.UUID | str, *, limit: int = 50, cursor: str | None = None
    ) -> SessionMessagesPage:
        return await self.send(Calls.session_messages(user, session_id, limit=limit, cursor=cursor))

    async def delete_session(self, user: str, session_id: uuid.UUID | str) -> SessionDeleted:
        return await self.send(Calls.delete_session(user, session_id))

    async def delete_message(self, user: str, session_id: uuid.UUID | str, message_id: int) -> MessageDeleted:
        return await self.send(Calls.delete_message(user, session_id, message_id))

    async def context(
        self,
        user: str,
        query: str = "",
        *,
        budget: int = 1000,
        session_id: uuid.UUID | None = None,
        preset: str | None = None,
        explain: bool = False,
        as_of: datetime | None = None,
    ) -> ContextResponse:
        return await self.send(
            Calls.context(
                user, query, budget=budget, session_id=session_id, preset=preset, explain=explain, as_of=as_of
            )
        )

    async def summary(self, user: str, *, include_history: bool = False) -> CustomerSummary:
        return await self.send(Calls.summary(user, include_history=include_history))

    async def search_entities(self, user: str, query: str, *, limit: int = 10) -> EntitySearchResponse:
        return await self.send(Calls.search_entities(user, query, limit=limit))

    async def recommendations(
        self, user: str, *, limit: int = 10, category: str | None = None, max_price: float | None = None
    ) -> RecommendationsResponse:
        """Products to suggest, with reasons; ``degraded`` says when it is the cheaper answer."""
        return await self.send(Calls.recommendations(user, limit=limit, category=category, max_price=max_price))

    async def memories(
        self, user: str, *, limit: int = 50, cursor: str | None = None, include_superseded: bool = False
    ) -> MemoryPage:
        return await self.send(Calls.memories(user, limit=limit, cursor=cursor, include_superseded=include_superseded))

    async def memory(self, user: str, memory_id: uuid.UUID | str) -> LongTermMemory:
        return await self.send(Calls.memory(user, memory_id))

    async def memory_history(self, user: str, memory_id: uuid.UUID | str) -> MemoryHistory:
        return await self.send(Calls.memory_history(user, memory_id))

    async def delete_memory(self, user: str, memory_id: uuid.UUID | str) -> MemoryDeleted:
        return await self.send(Calls.delete_memory(user, memory_id))

    async def erase(self, user: str) -> ErasureReceipt:
        return await self.send(Calls.erase(user))

    async def export(self, user: str) -> CustomerExport:
        return await self.send(Calls.export(user))

    async def consent(self, user: str) -> Consent:
        return await self.send(Calls.consent(user))

    async def set_consent(self, user: str, mode: MemoryMode) -> Consent:
        return await self.send(Calls.set_consent(user, mode))

    async def audit(
        self,
        *,
        customer: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> AuditPage:
        return await self.send(
            Calls.audit(customer=customer, action=action, since=since, until=until, limit=limit, cursor=cursor)
        )

    async def status(self) -> StatusResponse:
        return await self.send(Calls.status())

    async def whoami(self) -> WhoAmI:
        return await self.send(Calls.whoami())
