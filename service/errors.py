"""Typed errors; the API turns each into JSON ``{"error": …, "detail": …}`` with a status."""

from __future__ import annotations


class LoftError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(LoftError):
    status_code = 404
    code = "not_found"


class Unauthorized(LoftError):
    status_code = 401
    code = "unauthorized"


class Forbidden(LoftError):
    status_code = 403
    code = "forbidden"


class Conflict(LoftError):
    """The request cannot be served in the current state (e.g. an erasure is pending)."""

    status_code = 409
    code = "conflict"


class Gone(LoftError):
    """The request replays something that was erased with its customer (a tombstone):
    nothing is stored again."""

    status_code = 410
    code = "gone"


class InvalidInput(LoftError):
    status_code = 422
    code = "validation_error"


class StoreUnavailable(LoftError):
    """A store (PostgreSQL or Neo4j) cannot be reached; work that needs it is retried."""

    status_code = 503
    code = "store_unavailable"

    def __init__(self, store: str, detail: str) -> None:
        super().__init__(detail)
        self.store = store


class ConfigurationError(LoftError):
    """The environment points at something unusable; say what and how to fix it."""

    code = "configuration_error"
