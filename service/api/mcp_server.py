"""The memory as MCP tools, for agents: streamable HTTP at ``/mcp`` and stdio (``loftmem mcp``).

Tool names follow the hosted peers (mem0, Zep, Graphiti): ``add_memory``,
``search_memories``, ``get_context``, ``get_user_summary``, ``get_memories``,
``get_memory``, ``delete_memory``, ``recommend_products``, ``delete_all_memories``.
Each tool is a module-level function over the process's core (:class:`service.core.memory.Memory`),
the same methods the REST routes call; :func:`build_server` only registers them. None
speaks HTTP to this service.

**The customer is never a tool argument.** It is fixed by the connection:

- over HTTP by the key: a ``customer`` key is bound to its customer; a ``chat`` or
  ``admin`` key (or a keyless service, which listens on localhost only) names the customer
  in the ``X-Customer-Id`` header, set by the backend, not by the model. :class:`McpGate`
  checks both before the MCP transport sees a byte, and puts the :class:`Caller` in the
  request's scope, where the tools read it;
- over stdio by ``--user`` (the process has the stores' credentials, so whoever starts
  it is trusted; ``--admin`` additionally allows ``delete_all_memories``).

The HTTP transport is stateless with JSON responses: any API process can answer any
call (nothing here assumes a single process).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import AfterValidator, Field
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from loft_memory.models import (
    MAX_QUERY_CHARS,
    USER_ID_PATTERN,
    ContextItem,
    CustomerSummary,
    ErasureResult,
    LongTermMemory,
    MemoryAdded,
    MemoryDeleted,
    MemoryMode,
    MemoryModeResult,
    MemoryPage,
    Recommendations,
    SearchResults,
    check_text,
)
from service.api.access import KeyRing, presented_secret
from service.api.middleware import note_customer
from service.core import consent
from service.core.erasure import Receipt
from service.core.memory import Memory
from service.core.principal import LOCAL, Principal, Role
from service.errors import LoftError
from service.outages import is_outage
from service.retrieval import Retriever
from service.runtime import Runtime
from service.settings import Settings

log = logging.getLogger("loft.mcp")

CUSTOMER_HEADER = "x-customer-id"
INSTRUCTIONS = (
    "Long-term memory of one LOFT furniture-store customer (the connection decides which). "
    "Call get_context with the customer's message before answering them; call add_memory with "
    "what they said so it is remembered (it is filed in the background within seconds)."
)
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


@dataclass(frozen=True)
class Caller:
    """Who is calling (the key) and the one customer this connection is about."""

    principal: Principal
    customer: str


Resources = Callable[[], Memory]


# -- tool results --------------------------------------------------------------------------


# -- tool inputs ---------------------------------------------------------------------------


def _content(value: str) -> str:
    check_text(value, "content")
    if not value.strip():
        raise ValueError("content must not be empty")
    return value


def _aware_past(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("created_at needs a timezone, e.g. 2024-05-01T10:00:00Z")
    if not datetime(1970, 1, 1, tzinfo=UTC) <= value <= datetime.now(UTC):
        raise ValueError("created_at must lie between 1970 and now")
    return value


Content = Annotated[
    str,
    AfterValidator(_content),
    Field(min_length=1, max_length=8000, description="what was said, in the speaker's words"),
]
Query = Annotated[
    str,
    AfterValidator(check_text),
    Field(min_length=1, max_length=MAX_QUERY_CHARS, description="the customer's message or a question about them"),
]
MemoryId = Annotated[uuid.UUID, Field(description="a memory id from get_memories or search_memories")]


# -- the server ----------------------------------------------------------------------------


class MemoryServer(MCPServer):
    """The MCP server of one process: its tools reach the process's core through
    ``resources()``; ``stdio_caller`` is the fixed caller of a stdio server (None over HTTP)."""

    def __init__(self, resources: Resources, stdio_caller: Caller | None) -> None:
        super().__init__("loft-memory", instructions=INSTRUCTIONS, version="0.1.0", log_level="WARNING")
        self.resources = resources
        self.stdio_caller = stdio_caller


_TOOLS: list[tuple[Callable[..., Awaitable[Any]], str]] = []


def _tool(description: str) -> Callable[[F], F]:
    """Mark a function as a tool (:func:`build_server` registers every one)."""

    def register(fn: F) -> F:
        _TOOLS.append((fn, description))
        return fn

    return register


def build_server(resources: Resources, *, stdio_caller: Caller | None = None) -> MCPServer:
    """The MCP server; ``resources()`` gives the process's core (:class:`service.core.memory.Memory`)
    when a tool runs. ``stdio_caller`` is the fixed caller of a stdio server (None over HTTP)."""
    server = MemoryServer(resources, stdio_caller)
    for tool, description in _TOOLS:
        server.tool(description=description)(tool)
    return server


def _server(ctx: Context) -> MemoryServer:
    server = ctx.mcp_server
    assert isinstance(server, MemoryServer)
    return server


def _caller(ctx: Context) -> Caller:
    request = ctx.request_context.request
    if request is None:  # stdio
        stdio_caller = _server(ctx).stdio_caller
        if stdio_caller is None:
            raise ToolError("this connection is not bound to a customer")
        return stdio_caller
    found = getattr(request, "scope", {}).get("state", {}).get("mcp_caller")
    if not isinstance(found, Caller):  # never reached through McpGate: refuse rather than guess
        raise ToolError("this connection is not bound to a customer")
    return found


async def _reading(ctx: Context) -> tuple[Caller, Memory]:
    """The caller, once their customer is not being erased (the same 409 as the REST
    routes: :meth:`Memory.refuse_while_erasing`), and the process's core."""
    who = _caller(ctx)
    core = _server(ctx).resources()
    await _run(core.refuse_while_erasing(who.customer))
    return who, core


def _request_id(ctx: Context) -> str | None:
    request = ctx.request_context.request
    rid = getattr(request, "scope", {}).get("state", {}).get("request_id") if request is not None else None
    return str(rid) if rid else None


async def _audited_read(ctx: Context, who: Caller, core: Memory, tool: str) -> None:
    """A context read's audit entry, naming the tool (:meth:`Memory.audit_read`)."""
    await core.audit_read(who.customer, by=who.principal, request_id=_request_id(ctx), tool=tool)


async def _run(work: Awaitable[T]) -> T:
    """Errors as the model should read them: what went wrong and what to do."""
    try:
        return await work
    except ToolError:
        raise
    except LoftError as exc:
        raise ToolError(f"{exc.code}: {exc.detail}") from exc
    except Exception as exc:
        if is_outage(exc) or isinstance(exc, TimeoutError):
            raise ToolError("store_unavailable: a memory store is unavailable; retry in a few seconds") from exc
        # the exception's own text may quote a driver's message or stored text: logged, never sent
        log.exception("MCP tool failed (%s)", type(exc).__name__)
        raise ToolError("internal_error: the tool failed; the service logged why") from exc


# -- the tools ------------------------------------------------------------------------------


@_tool(
    description="Remember something the customer said (or the assistant answered). It is stored as a message "
    "of this customer and filed into long-term memory, the knowledge graph and the history in the background; "
    "get_context shows it within seconds. Send the customer's own words; one message per call."
)
async def add_memory(
    content: Content,
    ctx: Context,
    role: Annotated[
        Literal["user", "assistant"], Field(description="'user': the customer said it; 'assistant': you did")
    ] = "user",
    created_at: Annotated[
        datetime | None,
        AfterValidator(lambda v: v if v is None else _aware_past(v)),
        Field(description="when it was said (ISO 8601 with timezone); default now"),
    ] = None,
) -> MemoryAdded:
    who = _caller(ctx)
    return await _run(_server(ctx).resources().add_turn(who.customer, role, content, created_at, channel="mcp"))


@_tool(
    description="Search everything remembered about the customer (memories, past conversations, preferences, "
    "purchases) for a query. Returns the best matches with their dates and provenance (source message ids, "
    "memory id). Use get_context instead when you want prompt-ready text."
)
async def search_memories(
    query: Query,
    ctx: Context,
    limit: Annotated[int, Field(ge=1, le=50, description="at most this many results")] = 10,
) -> SearchResults:
    who, core = await _reading(ctx)
    found = await _run(core.context(who.customer, query, budget=4000))
    await _audited_read(ctx, who, core, "search_memories")
    items = [ContextItem.model_validate(i) for i in found.items[:limit]]
    return SearchResults(query=query, results=items, tiers=found.tiers)


@_tool(
    description="The prompt-ready context for answering the customer: their name, current preferences, "
    "purchases and the relevant bits of past conversations, packed into max_tokens. Call it with the "
    "customer's latest message before you reply, and put the text in your prompt."
)
async def get_context(
    query: Query,
    ctx: Context,
    max_tokens: Annotated[int, Field(ge=50, le=16000, description="budget (tokens = characters / 4)")] = 1000,
) -> str:
    who, core = await _reading(ctx)
    found = await _run(core.context(who.customer, query, budget=max_tokens))
    await _audited_read(ctx, who, core, "get_context")
    return found.text or "(nothing is remembered about this customer yet)"


@_tool(
    description="Everything remembered about the customer at once: name, preferences (current, or with "
    "history), purchases, people and things they mentioned, memories and conversation summaries."
)
async def get_user_summary(
    ctx: Context,
    include_history: Annotated[
        bool, Field(description="also preferences and memories that were replaced since")
    ] = False,
) -> CustomerSummary:
    who, core = await _reading(ctx)
    return await _run(core.summary(who.customer, include_history=include_history))


@_tool(
    description="The customer's long-term memories, newest first, a page at a time: pass next_cursor back "
    "as cursor for the next page (null on the last)."
)
async def get_memories(
    ctx: Context,
    limit: Annotated[int, Field(ge=1, le=200, description="memories per page")] = 20,
    cursor: Annotated[
        str | None, Field(max_length=200, description="next_cursor of the previous page; omit for the first")
    ] = None,
    include_superseded: Annotated[bool, Field(description="also memories a newer one replaced")] = False,
) -> MemoryPage:
    who, core = await _reading(ctx)
    return await _run(core.memories(who.customer, include_superseded=include_superseded, limit=limit, cursor=cursor))


@_tool(description="One long-term memory of the customer by id, with its dates and source messages.")
async def get_memory(memory_id: MemoryId, ctx: Context) -> LongTermMemory:
    who, core = await _reading(ctx)
    return await _run(core.memory(who.customer, memory_id))


@_tool(
    description="Forget one long-term memory of the customer by id (a fact that is wrong, or one the customer "
    "asked to forget). What goes: the memory, its text in its history, and the preference it states in the "
    "knowledge graph (closed now; kept only as past history), so get_context, get_user_summary and "
    "recommendations no longer use it, and a message sent before now does not bring it back. What stays: the "
    "conversation turns it came from (in the session history) and conversation summaries; if the customer "
    "says it again later, it is remembered again. To forget the customer entirely, an operator uses "
    "delete_all_memories."
)
async def delete_memory(memory_id: MemoryId, ctx: Context) -> MemoryDeleted:
    who, core = await _reading(ctx)
    return await _run(core.forget(who.customer, memory_id, by=who.principal, request_id=_request_id(ctx)))


@_tool(
    description="Products to suggest to the customer, from what they like, bought and asked about, each with "
    "the reasons it fits. Optionally only one category and up to a price."
)
async def recommend_products(
    ctx: Context,
    category: Annotated[
        str | None,
        AfterValidator(lambda v: v if v is None else check_text(v)),
        Field(max_length=64, description="e.g. 'sofas', 'dining tables'; omit for any"),
    ] = None,
    limit: Annotated[int, Field(ge=1, le=50, description="how many products")] = 5,
    max_price: Annotated[float | None, Field(gt=0, le=10_000_000, description="only products up to this")] = None,
) -> Recommendations:
    who, core = await _reading(ctx)
    result = await _run(core.recommend(who.customer, limit=limit, category=category, max_price=max_price))
    return Recommendations(available=True, result=dict(result))


@_tool(
    description="The customer's memory mode: 'full' (what they say is remembered across conversations), "
    "'session' (only this conversation is used; nothing is learned from it and it is removed once idle) or "
    "'off' (nothing they say is kept). Tell the customer when they ask what LOFT remembers."
)
async def get_memory_mode(ctx: Context) -> MemoryModeResult:
    who, core = await _reading(ctx)
    return MemoryModeResult(mode=await _run(core.memory_mode(who.customer)))


@_tool(
    description="Change the customer's memory mode, only when the customer asks to be remembered more or less. "
    "Lowering it (full -> session -> off) ERASES everything remembered about them now, with a receipt, and "
    "needs confirm=true (ask the customer first); raising it erases nothing."
)
async def set_memory_mode(
    mode: Annotated[MemoryMode, Field(description="'full', 'session' or 'off'")],
    ctx: Context,
    confirm: Annotated[bool, Field(description="must be true to lower the mode (it erases)")] = False,
) -> MemoryModeResult:
    who, core = await _reading(ctx)
    before = await _run(core.memory_mode(who.customer))
    if consent.RANK[mode] < consent.RANK[before] and not confirm:
        raise ToolError(
            f"validation_error: lowering the memory mode from '{before}' to '{mode}' erases everything "
            "remembered about the customer; ask them, then pass confirm=true"
        )
    changed = await _run(
        core.set_memory_mode(who.customer, mode, by=who.principal, request_id=_request_id(ctx), tool="set_memory_mode")
    )
    erased = _erasure_result(changed.receipt) if changed.receipt is not None else None
    return MemoryModeResult(mode=changed.mode, erased=erased)


@_tool(
    description="ADMIN KEYS ONLY. Forget this customer completely: every message, memory, graph fact, cached "
    "entry and queued job, with a receipt. Irreversible; only when the customer asked to be forgotten. Pass "
    "confirm=true."
)
async def delete_all_memories(
    ctx: Context,
    confirm: Annotated[bool, Field(description="must be true: this cannot be undone")] = False,
) -> ErasureResult:
    who = _caller(ctx)
    if who.principal.role is not Role.ADMIN:
        raise ToolError(
            f"forbidden: key '{who.principal.name}' ({who.principal.role}) may not erase a customer; "
            "it needs an admin key"
        )
    if not confirm:
        raise ToolError("validation_error: pass confirm=true to erase this customer (irreversible)")
    receipt = await _run(_server(ctx).resources().erase(who.customer, by=who.principal, request_id=_request_id(ctx)))
    return _erasure_result(receipt)


def _erasure_result(receipt: Receipt) -> ErasureResult:
    """An erasure's receipt as a tool answers it."""
    return ErasureResult(
        receipt_id=receipt.receipt_id, status=receipt.status, counts=dict(receipt.counts), error=receipt.error
    )


# -- HTTP: who is calling, and about whom ---------------------------------------------------


class McpGate:
    """ASGI guard in front of the MCP transport: a valid key (401), the customer from the key or
    ``X-Customer-Id`` (403 when a customer key names another; 422 when none or an invalid one
    is given), then the stateless transport with the :class:`Caller` in the request's scope."""

    def __init__(self, server: MCPServer, keyring: KeyRing) -> None:
        self.server = server
        self.keyring = keyring

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        try:
            caller = self.caller(request)
        except LoftError as exc:
            await self._refuse(scope, send, exc)
            return
        scope.setdefault("state", {})["mcp_caller"] = caller
        scope["state"]["principal"] = caller.principal  # the request's log line names the key
        note_customer(scope, caller.customer)
        await self.server.session_manager.handle_request(scope, receive, send)

    def caller(self, request: Request) -> Caller:
        from service.errors import Forbidden, InvalidInput, Unauthorized

        if self.keyring.open:
            principal = LOCAL
        else:
            secret = presented_secret(request)
            found = self.keyring.authenticate(secret) if secret is not None else None
            if found is None:
                raise Unauthorized(
                    "a valid API key is required: send 'Authorization: Bearer <key>' (or 'X-API-Key: <key>')"
                )
            principal = found
        named = request.headers.get(CUSTOMER_HEADER)
        if principal.role is Role.CUSTOMER:
            assert principal.customer is not None
            if named is not None and named != principal.customer:
                raise Forbidden(f"key '{principal.name}' acts for one customer only; X-Customer-Id names another")
            return Caller(principal, principal.customer)
        if named is None:
            raise InvalidInput(
                "say which customer this MCP connection is about: send the X-Customer-Id header "
                "(or use a customer key, which is bound to one)"
            )
        if not re.fullmatch(USER_ID_PATTERN, named):
            raise InvalidInput(f"X-Customer-Id must match {USER_ID_PATTERN}")
        return Caller(principal, named)

    async def _refuse(self, scope: Scope, send: Send, exc: LoftError) -> None:
        import json

        from service.api.middleware import request_id_of

        rid = request_id_of(dict(scope))
        body = json.dumps({"error": exc.code, "detail": exc.detail, "request_id": rid or None}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if exc.status_code == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def http_transport(server: MCPServer, host: str) -> None:
    """Prepare the stateless streamable-HTTP transport (its session manager runs in the
    app's lifespan). Host and Origin are the app's to check, for every route at once
    (``service.api.middleware.HostGuard`` in a service without keys): the transport's own
    check is off."""
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    server.streamable_http_app(stateless_http=True, json_response=True, transport_security=security, host=host)


async def serve_stdio(settings: Settings, user: str, *, admin: bool = False) -> None:
    """``loftmem mcp --user <id>``: one customer's memory over stdin/stdout."""
    from service.core.erasure import ErasureListener

    rt = await Runtime.open(settings, pool_size=4)
    retr = Retriever(rt)
    listener = ErasureListener(rt)  # an erasure elsewhere drops this process's cached copies too
    await listener.start()
    principal = Principal("stdio", Role.ADMIN, None) if admin else Principal("stdio", Role.CUSTOMER, user)
    core = Memory(rt, retr)
    server = build_server(lambda: core, stdio_caller=Caller(principal, user))
    try:
        await server.run_stdio_async()
    finally:
        await listener.stop()
        await retr.flush_access()
        await rt.close()
