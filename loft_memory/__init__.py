"""Python client of the LOFT memory API (see :mod:`loft_memory.client`)."""

from loft_memory.client import ApiError, AsyncLoftClient, Call, Calls, LoftClient

__all__ = ["ApiError", "AsyncLoftClient", "Call", "Calls", "LoftClient"]
