"""Who may call what: API keys with roles, checked on every route.

Keys come from ``LOFT_API_KEYS`` (comma-separated ``name:role:secret``) and/or
``LOFT_API_KEYS_FILE`` (TOML or JSON: a list of ``{name, role, secret | secret_sha256,
customer}``), so a key file need not hold the secrets themselves. Roles:

- ``chat``: the chat backend: chat, context, search, summaries, sessions, memories and
  recommendations of any customer;
- ``customer``: a key bound to one customer (the chat page or an agent acting for one
  person): the same routes, for that customer only: any other identifier is 403;
- ``admin``: everything, including erasure, receipts, sample data, detailed status
  and metrics.

A key is sent as ``Authorization: Bearer <secret>`` (or ``X-API-Key: <secret>``). Only
SHA-256 digests of secrets are kept in memory; a presented secret is hashed as bytes and
compared with every key's digest in constant time (so a non-ASCII header is simply a
wrong key), and only a key's *name* is ever logged or returned.

With no key configured the service is open, and :func:`check_bind` makes sure it then
listens on the loopback interface only (``LOFT_ALLOW_OPEN=1`` overrides that for a lab).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import math
import re
import time
import tomllib
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from fastapi import Request

from service.core.principal import LOCAL, Principal, Role
from service.errors import ConfigurationError, Forbidden, LoftError, Unauthorized

if TYPE_CHECKING:
    from service.settings import Settings

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MIN_SECRET_CHARS = 16


@dataclass(frozen=True)
class ApiKey:
    name: str
    role: Role
    digest: bytes  # SHA-256 of the secret
    customer: str | None = None


def digest(secret: str | bytes) -> bytes:
    return hashlib.sha256(secret if isinstance(secret, bytes) else secret.encode()).digest()


class KeyRing:
    def __init__(self, keys: list[ApiKey]) -> None:
        names = [k.name for k in keys]
        if len(set(names)) != len(names):
            raise ConfigurationError("API key names must be unique")
        if len({k.digest for k in keys}) != len(keys):
            raise ConfigurationError("two API keys have the same secret")
        self.keys = keys

    @property
    def open(self) -> bool:
        return not self.keys

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        keys = [_parse_entry(entry) for entry in settings.api_keys]
        if settings.api_keys_file is not None:
            keys += _load_file(Path(settings.api_keys_file))
        return cls(keys)

    def authenticate(self, secret: bytes) -> Principal | None:
        presented = digest(secret)
        found = None
        for key in self.keys:  # every key is compared: the time does not say which matched
            if hmac.compare_digest(presented, key.digest):
                found = key
        return Principal(found.name, found.role, found.customer) if found else None


def _parse_entry(entry: str) -> ApiKey:
    parts = entry.split(":", 2)
    if len(parts) != 3:
        raise ConfigurationError("LOFT_API_KEYS entries are name:role:secret, separated by commas")
    name, role, secret = (p.strip() for p in parts)
    if role == Role.CUSTOMER:
        raise ConfigurationError(f"key '{name}': customer keys are bound to a customer; put them in LOFT_API_KEYS_FILE")
    return _key(name, role, secret=secret)


def _load_file(path: Path) -> list[ApiKey]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigurationError(f"LOFT_API_KEYS_FILE {path} cannot be read: {exc.strerror}") from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(
            f"LOFT_API_KEYS_FILE {path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}"
        ) from exc
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ConfigurationError(f"LOFT_API_KEYS_FILE {path}: expected a list of keys under 'keys'")
    return [
        _key(
            e.get("name", ""),
            e.get("role", ""),
            secret=e.get("secret"),
            secret_sha256=e.get("secret_sha256"),
            customer=e.get("customer"),
        )
        for e in entries
        if isinstance(e, dict)
    ]


def _key(
    name: object, role: object, *, secret: object = None, secret_sha256: object = None, customer: object = None
) -> ApiKey:
    """One configured key, checked (the values are as the configuration gave them: any type)."""
    from loft_memory.models import USER_ID_PATTERN

    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigurationError(f"API key name {name!r} must match {_NAME.pattern}")
    try:
        granted = Role(role if isinstance(role, str) else "")
    except ValueError as exc:
        raise ConfigurationError(f"key '{name}': role must be one of {', '.join(Role)}") from exc
    if secret_sha256 is not None:
        try:
            hashed = bytes.fromhex(str(secret_sha256))
        except ValueError as exc:
            raise ConfigurationError(f"key '{name}': secret_sha256 is not hex") from exc
        if len(hashed) != 32:
            raise ConfigurationError(f"key '{name}': secret_sha256 must be 64 hex characters")
    elif isinstance(secret, str) and len(secret) >= MIN_SECRET_CHARS and secret.isascii() and secret.isprintable():
        hashed = digest(secret)
    else:  # never echo the secret itself
        raise ConfigurationError(
            f"key '{name}': the secret must be at least {MIN_SECRET_CHARS} printable ASCII characters"
        )
    if granted is Role.CUSTOMER:
        if not isinstance(customer, str) or not re.fullmatch(USER_ID_PATTERN, customer):
            raise ConfigurationError(f"key '{name}': a customer key needs 'customer', a valid customer identifier")
    elif customer is not None:
        raise ConfigurationError(f"key '{name}': only customer keys are bound to a customer")
    return ApiKey(name, granted, hashed, customer)


def presented_secret(request: Request) -> bytes | None:
    """The secret from ``Authorization: Bearer …`` or ``X-API-Key``, as raw bytes."""
    for name, value in request.scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return bytes(token.strip())
        elif name == b"x-api-key" and value.strip():
            return bytes(value.strip())
    return None


def allow(*roles: Role) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: the caller must hold one of ``roles``; a customer key must also be
    bound to the customer the path names (``{user_identifier}``)."""
    allowed = frozenset(roles)

    async def check(request: Request) -> Principal:
        principal = identify(request)
        if principal.role not in allowed:
            raise Forbidden(
                f"key '{principal.name}' ({principal.role}) may not call this; it needs: {', '.join(sorted(allowed))}"
            )
        user = request.path_params.get("user_identifier")
        if user is not None:
            principal.require_customer(user)
        return principal

    return check


def identify(request: Request) -> Principal:
    """The caller of ``request`` (401 without a valid key when keys are configured)."""
    known: Principal | None = getattr(request.state, "principal", None)
    if known is not None:
        return known
    ring: KeyRing = request.app.state.keyring
    if ring.open:
        request.state.principal = LOCAL
        return LOCAL
    secret = presented_secret(request)
    principal = ring.authenticate(secret) if secret is not None else None
    if principal is None:
        raise Unauthorized("a valid API key is required: send 'Authorization: Bearer <key>' (or 'X-API-Key: <key>')")
    request.state.principal = principal  # for the request log: the key's name only
    return principal


def optional_principal(request: Request) -> Principal | None:
    """The caller if a valid key was sent (or the service is open), else None; never raises."""
    try:
        return identify(request)
    except Unauthorized:
        return None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _hostname(authority: str) -> str | None:
    """The host name of a ``Host`` header (``name[:port]``, ``[::1]:8001``), lower-cased;
    None for anything else (a user part, a path: no browser sends those)."""
    if any(c in authority for c in "@/\\?# "):
        return None
    try:
        parts = urlsplit(f"//{authority}")
        parts.port  # noqa: B018 (a malformed port raises here)
    except ValueError:
        return None
    return parts.hostname or None


def answers_to(host: str | None, allowed: Sequence[str]) -> bool:
    """Whether a service without keys answers a request sent to ``host`` (its Host header):
    a loopback name or address, or a name in ``LOFT_ALLOWED_HOSTS``. A web page that makes
    its own name point at 127.0.0.1 (DNS rebinding) still sends its own name."""
    name = _hostname(host) if host else None
    return name is not None and (is_loopback(name) or name in {a.lower() for a in allowed})


def local_origin(origin: str, allowed: Sequence[str]) -> bool:
    """Whether a browser's ``Origin`` is a page of a loopback (or allowed) name."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and answers_to(parts.netloc, allowed)


def own_origin(origin: str, server: tuple[str, int] | None, allowed: Sequence[str]) -> bool:
    """Whether ``Origin`` names this service: the address and port the request reached
    (``server``, the listening socket's, which a client cannot choose), any loopback name
    when that address is loopback, or a name in ``LOFT_ALLOWED_HOSTS``."""
    try:
        parts = urlsplit(origin)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return False
    name = parts.hostname
    if server is None or name is None or parts.scheme not in ("http", "https"):
        return False
    host, listening = server
    if name in {a.lower() for a in allowed}:
        return True
    same = name == host.lower().strip("[]") or (is_loopback(name) and is_loopback(host.strip("[]")))
    return same and port == listening


def check_bind(settings: Settings, host: str) -> None:
    """Refuse to serve an open API (no keys) on anything but the loopback interface."""
    ring = KeyRing.from_settings(settings)
    if ring.open and not is_loopback(host) and not settings.allow_open:
        raise ConfigurationError(
            f"refusing to listen on {host} without API keys: anyone who can reach the port could read every "
            "customer's memory. Set LOFT_API_KEYS (name:role:secret,...) or LOFT_API_KEYS_FILE, or listen on "
            "127.0.0.1; LOFT_ALLOW_OPEN=1 overrides this for a lab."
        )


# -- how often: each key's budget, per API process ----------------------------------------------


class TooManyRequests(LoftError):
    """A key spent its budget (requests per minute, or streamed replies at once); retry later."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


@dataclass
class _Bucket:
    tokens: float
    at: float


class StreamSlot:
    """One streamed reply of a key, counted from before its turn is stored until its reply
    is (a reply goes on after its client leaves). Released once, by whoever ends it."""

    def __init__(self, owner: Budgets, key: str) -> None:
        self.owner = owner
        self.key = key
        self.adopted = False  # the reply task holds it: the request's end does not release it
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self.owner._streams[self.key] -= 1


class Budgets:
    """Per-key limits of one API process: requests per minute (a token bucket per key:
    bursts of up to a minute's budget, refilled continuously) and streamed replies in
    progress. Admin keys (and a service without keys) are not limited; 0 means no limit.
    State is per process: N API processes let a key make N times these."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_min = {Role.CHAT: settings.rate_limit_per_min, Role.CUSTOMER: settings.customer_rate_limit_per_min}
        self.streams = {Role.CHAT: settings.streams_per_key, Role.CUSTOMER: settings.customer_streams_per_key}
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._streams: Counter[str] = Counter()

    def spend(self, principal: Principal) -> None:
        """Count one request of ``principal`` (TooManyRequests when its budget is spent)."""
        per_min = self.per_min.get(principal.role, 0)
        if not per_min:
            return
        now = self.clock()
        bucket = self._buckets.setdefault(principal.name, _Bucket(float(per_min), now))
        bucket.tokens = min(float(per_min), bucket.tokens + (now - bucket.at) * per_min / 60.0)
        bucket.at = now
        if bucket.tokens < 1.0:
            wait = math.ceil((1.0 - bucket.tokens) * 60.0 / per_min)
            raise TooManyRequests(
                f"key '{principal.name}' made more than {per_min} requests in a minute; retry in {wait} s", wait
            )
        bucket.tokens -= 1.0

    def reserve_stream(self, principal: Principal) -> StreamSlot | None:
        """A slot for one more streamed reply of ``principal`` (TooManyRequests at its cap)."""
        cap = self.streams.get(principal.role, 0)
        if not cap:
            return None
        if self._streams[principal.name] >= cap:
            raise TooManyRequests(
                f"key '{principal.name}' already has {cap} streamed replies in progress; retry when one is done", 5
            )
        self._streams[principal.name] += 1
        return StreamSlot(self, principal.name)
