"""The FastAPI application: routers, error shapes, the chat page, lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from loft_memory.models import ErrorResponse, WhoAmI
from service.api.access import Budgets, KeyRing, TooManyRequests, allow
from service.api.middleware import BodyLimit, HostGuard, KeyBudget, RequestId, loggable, request_id_of
from service.core.erasure import ErasureListener
from service.core.principal import ANY_ROLE, Principal
from service.errors import LoftError
from service.outages import OUTAGES, is_outage, is_statement_timeout
from service.retrieval import Retriever
from service.runtime import Runtime
from service.settings import Settings

log = logging.getLogger("loft.api")

FRONTEND = Path(__file__).resolve().parents[2] / "frontend" / "index.html"
GUIDE_PATH = "/analysts/guide"
# what Neo4j Browser's guide fetch needs from a preflight (a public page, never with credentials)
GUIDE_PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET",
    "Access-Control-Allow-Headers": "Cache-Control, Pragma",
    "Access-Control-Max-Age": "600",
}


# every error has one shape (the error boundary below); the schema says so for every route
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "no valid API key"},
    403: {"model": ErrorResponse, "description": "the key's role or customer does not allow this"},
    404: {"model": ErrorResponse, "description": "no such customer, session, memory or receipt"},
    409: {
        "model": ErrorResponse,
        "description": "an erasure of this customer is pending, or a retried turn is in flight",
    },
    410: {
        "model": ErrorResponse,
        "description": "the request replays an id (a turn's Idempotency-Key or message_id, an import's "
        "external_id, an order_id, a session_id) of a customer who was erased; nothing was stored",
    },
    413: {"model": ErrorResponse, "description": "the request body is over the limit"},
    422: {"model": ErrorResponse, "description": "invalid input, with a readable reason"},
    429: {
        "model": ErrorResponse,
        "description": "the key spent its budget (requests per minute, or streamed replies at once); "
        "retry after Retry-After seconds",
        "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
    },
    500: {"model": ErrorResponse, "description": "an internal error; the body quotes the request id"},
    503: {"model": ErrorResponse, "description": "a store is unavailable; retry after Retry-After seconds"},
    504: {
        "model": ErrorResponse,
        "description": "a PostgreSQL statement ran past its time limit; the request was not completed",
    },
}


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    """Build the app. With ``runtime`` given (tests, benchmarks) the caller owns it;
    otherwise the lifespan opens one from ``settings`` and closes it on shutdown."""

    app = FastAPI(
        title="LOFT memory",
        version="0.1.0",
        description=(
            "Persistent memory for the LOFT chat assistant: conversation history (PostgreSQL), "
            "a knowledge graph of customers, products and preferences (Neo4j) and long-term "
            "memories (pgvector), merged into prompt-ready context."
        ),
        lifespan=_lifespan(settings, runtime),
        responses=ERROR_RESPONSES,
    )

    from service.api.routers import chat, erasure, memory, metrics, orders, privacy, sessions, status

    # keys are read once, at start-up: a malformed key configuration stops the service
    app.state.keyring = KeyRing.from_settings(settings)
    app.state.budgets = Budgets(settings)
    app.state.health = status.Health(settings.status_stats_ttl_s)

    # agents: MCP over streamable HTTP at /mcp, the customer fixed by the key or X-Customer-Id
    from service.api.mcp_server import McpGate, build_server, http_transport

    agents = app.state.agents = build_server(lambda: app.state.memory)
    http_transport(agents, settings.host)
    # an ASGI app, which Starlette runs as one (its stubs only know request handlers)
    app.add_route("/mcp", McpGate(agents, app.state.keyring), include_in_schema=False)  # type: ignore[arg-type]

    # every router declares who may call it (service/api/access.py)
    app.include_router(status.router)
    app.include_router(chat.router)
    app.include_router(sessions.router)
    app.include_router(erasure.router)
    app.include_router(privacy.router)
    app.include_router(memory.router)
    app.include_router(metrics.router)
    app.include_router(orders.router)

    @app.get("/v1/whoami", response_model=WhoAmI, tags=["access"], summary="The caller's key name and role")
    async def whoami(principal: Principal = Depends(allow(*ANY_ROLE))) -> WhoAmI:
        return WhoAmI(
            key=principal.name, role=principal.role.value, customer=principal.customer, open=app.state.keyring.open
        )

    _pages(app)
    install_error_boundary(app)
    app.add_middleware(
        BodyLimit,
        limit_for=lambda path: settings.max_import_bytes if path.endswith(IMPORT_PATHS) else settings.max_body_bytes,
    )
    app.add_middleware(KeyBudget)
    if app.state.keyring.open:  # every route, /mcp included: one check
        app.add_middleware(HostGuard, allowed=settings.allowed_hosts)
    app.add_middleware(RequestId)  # outermost: every response, even a 413, carries the id
    return app


def _pages(app: FastAPI) -> None:
    """The chat page, and the analysts' Neo4j Browser guide."""

    @app.get("/", include_in_schema=False)
    async def chat_page() -> FileResponse:
        return FileResponse(FRONTEND, media_type="text/html")

    # the analysts' saved queries as a Neo4j Browser guide (`:play http://127.0.0.1:8001/analysts/guide`);
    # only query text, no data, so public. Browser fetches it cross-origin with `Cache-Control` and
    # `Pragma` request headers, so Chromium sends a CORS preflight first: without an answer to it
    # Browser falls back to its own guide names and says "No guide by that name"
    @app.get(GUIDE_PATH, include_in_schema=False)
    async def analyst_guide() -> HTMLResponse:
        from graph import analyst

        return HTMLResponse(analyst.guide_html(analyst.load()), headers={"Access-Control-Allow-Origin": "*"})

    @app.options(GUIDE_PATH, include_in_schema=False)
    async def analyst_guide_preflight(request: Request) -> Response:
        headers = dict(GUIDE_PREFLIGHT_HEADERS)
        # a Browser served from a non-loopback address asks before reading a loopback API
        if request.headers.get("access-control-request-private-network") == "true":
            headers["Access-Control-Allow-Private-Network"] = "true"
        return Response(status_code=204, headers=headers)


def _lifespan(settings: Settings, runtime: Runtime | None) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Open the process's runtime, retriever and core (or take the caller's ``runtime``, which
    the caller then owns), listen for erasures elsewhere, warm up, and run the MCP transport's
    session manager."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from service.core.memory import Memory
        from service.retrieval import Retriever

        if runtime is not None:
            app.state.runtime = runtime
            app.state.retriever = Retriever(runtime)
            app.state.memory = Memory(runtime, app.state.retriever)
            async with app.state.agents.session_manager.run():
                yield
            return
        app.state.runtime = await Runtime.open(settings)
        app.state.retriever = Retriever(app.state.runtime)
        app.state.memory = Memory(app.state.runtime, app.state.retriever)
        listener = ErasureListener(app.state.runtime)
        await listener.start()
        await _warm_up(app.state.retriever)
        try:
            async with app.state.agents.session_manager.run():
                yield
        finally:
            await listener.stop()
            await app.state.retriever.flush_access()
            await app.state.runtime.close()

    return lifespan


async def _warm_up(retriever: Retriever) -> None:
    """Pay for the model's first inference and the stores' first query plans before the
    first customer does (for an identifier no customer can have; a store that is down is
    skipped)."""
    from graph.writes import WARM_UP_USER

    try:
        await retriever.context(WARM_UP_USER, "warming up: which sofa did I like?", track_access=False)
    except Exception as exc:
        log.info("warm-up skipped: %s", type(exc).__name__)
    retriever.rt.forget_cached(WARM_UP_USER)


# routes that take bulk bodies (history imports, order feeds): the larger body limit
IMPORT_PATHS = ("/messages", "/orders")
RETRY_AFTER_S = "5"
CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def _reply(
    request: Request, status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    rid = request_id_of(request.scope)
    headers = dict(headers or {}) | ({"X-Request-ID": rid} if rid else {})
    return JSONResponse(
        {"error": code, "detail": detail, "request_id": rid or None}, status_code=status, headers=headers
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A store that is away (503), a statement past its time limit (504), or a bug (500)."""
    rid = request_id_of(request.scope)
    if is_statement_timeout(exc):
        log.warning("%s: a statement timed out (%s) rid=%s", loggable(request.scope), type(exc).__name__, rid)
        return _reply(
            request,
            504,
            "store_timeout",
            "a PostgreSQL statement ran past its time limit and was cancelled; the request was not completed",
        )
    if is_outage(exc) or isinstance(exc, TimeoutError):  # a store away, or too slow to answer
        store = "neo4j" if type(exc).__module__.startswith("neo4j") else "postgres"
        log.warning("%s: %s unavailable (%s) rid=%s", loggable(request.scope), store, type(exc).__name__, rid)
        return _reply(
            request,
            503,
            "store_unavailable",
            f"{'Neo4j' if store == 'neo4j' else 'PostgreSQL'} is unavailable; retry shortly",
            {"Retry-After": RETRY_AFTER_S},
        )
    log.exception("%s failed rid=%s", loggable(request.scope), rid)
    return _reply(
        request, 500, "internal_error", f"an internal error occurred; quote request id {rid} when reporting it"
    )


def install_error_boundary(app: FastAPI) -> None:
    """One shape for every error: ``{error, detail, request_id}`` with the right status.
    A store that is away is 503 with ``Retry-After``; a PostgreSQL statement that ran past
    its time limit is 504 ``store_timeout`` (the request was not completed; it is about the
    data or the locks that statement met, not a store that is down, so no ``Retry-After``);
    anything unexpected is a 500 whose body carries only the request id (the exception is
    logged with it, never sent)."""

    @app.exception_handler(LoftError)
    async def loft_error(request: Request, exc: LoftError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        if exc.status_code == 503:
            headers = {"Retry-After": RETRY_AFTER_S}
        if isinstance(exc, TooManyRequests):
            headers = {"Retry-After": str(exc.retry_after)}
        return _reply(request, exc.status_code, exc.code, exc.detail, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header"))
            problems.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return _reply(request, 422, "validation_error", "; ".join(problems))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _reply(request, exc.status_code, CODES.get(exc.status_code, "error"), str(exc.detail), exc.headers)

    # A handler for ``Exception`` runs in Starlette's outermost middleware, which re-raises
    # after replying, and uvicorn then closes the connection: a client that reuses it for the
    # next request meets a reset. Store outages are expected, so their classes (and the
    # OSError/TimeoutError a driver raises) are handled where other errors are, and the
    # connection stays open; anything else still goes to the outermost handler.
    for outage in (
        *(c for c in OUTAGES if not issubclass(c, LoftError)),
        OSError,
        TimeoutError,
        asyncpg.QueryCanceledError,
    ):
        app.add_exception_handler(outage, _unexpected)
    app.add_exception_handler(Exception, _unexpected)


def app_from_env() -> FastAPI:
    """App factory for multi-process serving (`loftmem serve --workers N`)."""
    from service.settings import Settings, with_local_stack

    return create_app(with_local_stack(Settings()))
