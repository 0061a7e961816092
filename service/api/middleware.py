"""ASGI middleware: a request id on every request, the keyless service's Host check, each
key's request budget, and body limits enforced before parsing.

All are plain ASGI (no ``BaseHTTPMiddleware``): they add nothing to the hot path but a
header lookup, and a body that is too large is refused with 413 before FastAPI reads a
byte of it into a model. ``RequestId`` also writes the request's log line (``loft.access``)
and counts it in the Prometheus metrics, both by route *template*: a customer's
identifier appears in neither (the log carries a keyed hash of it).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

log = logging.getLogger("loft.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_of(scope: Scope) -> str:
    return str(scope.get("state", {}).get("request_id", ""))


class RequestId:
    """Takes a sane ``X-Request-ID`` from the client or makes one, keeps it in the request
    state (error bodies quote it) and echoes it in the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        rid = given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                message["headers"] = [*headers, (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _access(scope, status, time.perf_counter() - started, rid)


def note_customer(scope: MutableMapping[str, Any], user: str) -> None:
    """Tell the request's log line which customer it was about (a body field, an MCP connection)."""
    scope.setdefault("state", {})["customer"] = user


def customer_tag_of(scope: Scope) -> str | None:
    """The request's customer as logs name it (a keyed hash), if it is about one."""
    from service.logs import customer_tag

    state = scope.get("state", {})
    principal = state.get("principal")
    user = (scope.get("path_params") or {}).get("user_identifier") or state.get("customer")
    if user is None and principal is not None:
        user = principal.customer
    runtime = getattr(getattr(scope.get("app"), "state", None), "runtime", None)
    return customer_tag(getattr(runtime, "erasure_key", b""), user) if user else None


def loggable(scope: Scope) -> str:
    """A request as a log line may name it: method, route template, customer tag; never its
    path, which can hold a customer's identifier."""
    route = getattr(scope.get("route"), "path", None) or "<unmatched>"
    tag = customer_tag_of(scope)
    return f"{scope.get('method', '')} {route}" + (f" customer={tag}" if tag else "")


def _access(scope: Scope, status: int, seconds: float, rid: str) -> None:
    from service.metrics import observe_request

    route = getattr(scope.get("route"), "path", None)
    observe_request(scope["method"], route, status, seconds)
    principal = scope.get("state", {}).get("principal")
    tag = customer_tag_of(scope)
    key = principal.name if principal is not None else None
    ms = round(seconds * 1000, 1)
    log.info(
        "%s %s %s %.1f ms rid=%s%s%s",
        scope["method"],
        route or "<unmatched>",
        status,
        ms,
        rid,
        f" customer={tag}" if tag else "",
        f" key={key}" if key else "",
        extra={
            "request_id": rid,
            "method": scope["method"],
            "route": route or "<unmatched>",
            "status": status,
            "duration_ms": ms,
            "customer": tag,
            "key": key,
        },
    )


class HostGuard:
    """For a service without keys: answer only requests addressed to this machine by a
    loopback name (or a name of ``allowed``), and from no other site's page. A page whose
    name an attacker points at 127.0.0.1 (DNS rebinding) sends its own name as ``Host``, and
    a cross-site request its own ``Origin``: both are refused with 403, saying why."""

    def __init__(self, app: ASGIApp, allowed: list[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from service.api.access import answers_to, local_origin

        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = _header(scope, b"host")
        origin = _header(scope, b"origin")
        if not answers_to(host, self.allowed):
            await _refuse(
                scope,
                send,
                403,
                "forbidden",
                f"this service runs without API keys, so it answers only requests addressed to localhost, "
                f"not to {_shown(host)}; add the name to LOFT_ALLOWED_HOSTS, or configure API keys",
                _unread_body(scope),
            )
        elif origin is not None and not local_origin(origin, self.allowed):
            await _refuse(
                scope,
                send,
                403,
                "forbidden",
                f"this service runs without API keys, so it answers only its own pages and other local ones, "
                f"not a page of {_shown(origin)}",
                _unread_body(scope),
            )
        else:
            await self.app(scope, receive, send)


class KeyBudget:
    """Counts each request of a key against its budget (:class:`service.api.access.Budgets`)
    and answers 429 with ``Retry-After`` when it is spent, before the request is read. The
    caller is identified here once; routes reuse it. A request without a valid key passes
    untouched (its route answers 401, or serves the public part of its answer)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from starlette.requests import Request

        from service.api.access import TooManyRequests, identify
        from service.errors import Unauthorized

        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            principal = identify(request)
            request.app.state.budgets.spend(principal)
        except Unauthorized:
            pass
        except TooManyRequests as exc:
            headers = [(b"retry-after", str(exc.retry_after).encode()), *_unread_body(scope)]
            await _refuse(scope, send, 429, exc.code, exc.detail, headers)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            # a streamed reply's slot taken by a request that never started its stream
            slot = scope.get("state", {}).get("stream_slot")
            if slot is not None and not slot.adopted:
                slot.release()


def _unread_body(scope: Scope) -> list[tuple[bytes, bytes]]:
    """A refusal of a request that may carry a body closes the connection (the body is unread)."""
    return [] if scope["method"] in ("GET", "HEAD", "OPTIONS") else [(b"connection", b"close")]


def _shown(value: str | None) -> str:
    """A header value as an error may quote it: printable and short."""
    if not value:
        return "no name"
    return repr(value[:100].encode("latin-1", "replace").decode("ascii", "replace"))


class BodyLimit:
    """Refuse request bodies over a limit with 413, before the app parses them.
    ``limit_for(path)`` gives the limit of a path (imports get more than chat turns)."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _too_large(scope, send, "Content-Length is not a number", status=400, code="bad_request")
                return
            if int(declared) > limit:
                await _too_large(scope, send, f"the request body is larger than {_size(limit)}")
                return
            await self.app(scope, receive, send)
            return
        # no length given (chunked): read up to the limit, then hand the body on
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                await _too_large(scope, send, f"the request body is larger than {_size(limit)}")
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n >= 1024 * 1024 and n % (1024 * 1024) == 0 else f"{n // 1024} KB"


async def _too_large(
    scope: Scope, send: Send, detail: str, *, status: int = 413, code: str = "payload_too_large"
) -> None:
    # the unread body is still on the connection: close it
    await _refuse(scope, send, status, code, detail, [(b"connection", b"close")])


async def _refuse(
    scope: Scope, send: Send, status: int, code: str, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Answer with the error boundary's JSON shape, before the app sees the request."""
    rid = request_id_of(scope)
    body = json.dumps({"error": code, "detail": detail, "request_id": rid or None}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
