"""The FastAPI application: routers, error shapes, the chat page, lifespan."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.access import ANY_ROLE, KeyRing, Principal, allow
from service.erasure import ErasureListener
from service.errors import LoftError
from service.runtime import Runtime
from service.schemas import WhoAmI
from service.settings import Settings

log = logging.getLogger("loft.api")

FRONTEND = Path(__file__).resolve().parent.parent / "frontend" / "index.html"


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    """Build the app. With ``runtime`` given (tests, benchmarks) the caller owns it;
    otherwise the lifespan opens one from ``settings`` and closes it on shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if runtime is not None:
            app.state.runtime = runtime
            yield
            return
        app.state.runtime = await Runtime.open(settings)
        listener = ErasureListener(app.state.runtime)
        await listener.start()
        try:
            yield
        finally:
            await listener.stop()
            await app.state.runtime.close()

    app = FastAPI(
        title="LOFT memory",
        version="0.1.0",
        description=(
            "Persistent memory for the LOFT chat assistant: conversation history (PostgreSQL), "
            "a knowledge graph of customers, products and preferences (Neo4j) and long-term "
            "memories (pgvector), merged into prompt-ready context."
        ),
        lifespan=lifespan,
    )

    # keys are read once, at start-up: a malformed key configuration stops the service
    app.state.keyring = KeyRing.from_settings(settings)

    from service.routers import chat, erasure, memory, sessions, status

    # every router declares who may call it (service/access.py)
    app.include_router(status.router)
    app.include_router(chat.router)
    app.include_router(sessions.router)
    app.include_router(erasure.router)
    app.include_router(memory.router)

    @app.get("/v1/whoami", response_model=WhoAmI, tags=["access"], summary="The caller's key name and role")
    async def whoami(principal: Principal = Depends(allow(*ANY_ROLE))) -> WhoAmI:
        return WhoAmI(key=principal.name, role=principal.role.value, customer=principal.customer,
                      open=app.state.keyring.open)

    @app.get("/", include_in_schema=False)
    async def chat_page() -> FileResponse:
        return FileResponse(FRONTEND, media_type="text/html")

    @app.exception_handler(LoftError)
    async def loft_error(request: Request, exc: LoftError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
            problems.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return JSONResponse({"error": "validation_error", "detail": "; ".join(problems)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
        return JSONResponse({"error": code, "detail": exc.detail}, status_code=exc.status_code)

    return app


def app_from_env() -> FastAPI:
    """App factory for multi-process serving (`loftmem serve --workers N`)."""
    from service.devstack import running_stack
    from service.settings import Settings

    return create_app(running_stack(Settings()))
