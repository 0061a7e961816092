"""Opaque keyset cursors: ``(timestamp, id)`` of the last row of a page, base64-encoded."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

from service.errors import InvalidInput


def encode_cursor(at: datetime, row_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{row_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        at, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        parsed = datetime.fromisoformat(at)
        if parsed.tzinfo is None:
            raise ValueError("naive timestamp")
        return parsed, uuid.UUID(row_id)
    except (ValueError, UnicodeError) as exc:
        raise InvalidInput("cursor is not one this API returned") from exc
