"""Opaque keyset cursors: the ``(timestamp, id)`` of a page's last row, signed.

A cursor names the list it pages (``what``: the route's list and the customer), and an
HMAC of it under a key derived from the deployment's secret (the erasure key) travels
with it. So a cursor the API did not hand out (edited, crafted, or another customer's)
is a 422 before any of it reaches a query; its timestamp is also read back in UTC and
must lie in real history (a leaked key still cannot make PostgreSQL's encoder overflow).
A cursor stays valid across API processes and restarts while the key stays the same.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from service.errors import InvalidInput

T = TypeVar("T")

_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_SKEW = timedelta(days=1)
_SIG_BYTES = 16


def encode_cursor(key: bytes, what: str, at: datetime, row_id: object) -> str:
    payload = f"{at.astimezone(UTC).isoformat()}|{row_id}"
    return base64.urlsafe_b64encode(f"{payload}|{_sign(key, what, payload)}".encode()).decode()


def decode_cursor(key: bytes, what: str, cursor: str, parse_id: Callable[[str], T]) -> tuple[datetime, T]:
    """The ``(timestamp, id)`` a cursor from :func:`encode_cursor` carries, for the same
    ``what``; anything else is :class:`InvalidInput`."""
    try:
        at_text, row_text, signature = base64.urlsafe_b64decode(cursor.encode("ascii")).decode().split("|")
        if not hmac.compare_digest(signature, _sign(key, what, f"{at_text}|{row_text}")):
            raise ValueError("signature")
        at = datetime.fromisoformat(at_text)
        if at.tzinfo is None:
            raise ValueError("naive timestamp")
        at = at.astimezone(UTC)
        if not _EARLIEST <= at <= datetime.now(UTC) + _SKEW:
            raise ValueError("out of range")
        return at, parse_id(row_text)
    except (ValueError, UnicodeError, OverflowError) as exc:
        raise InvalidInput(
            "cursor is not one this API returned for this list (or the service's key changed); "
            "start again from the first page"
        ) from exc


def _sign(key: bytes, what: str, payload: str) -> str:
    mac = hmac.new(key or b"loft-cursor", b"cursor\x00" + what.encode() + b"\x00" + payload.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()[:_SIG_BYTES]).decode().rstrip("=")
