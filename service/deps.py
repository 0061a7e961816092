"""FastAPI dependencies."""

from __future__ import annotations

from fastapi import Request

from service.retrieval import Retriever
from service.runtime import Runtime


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def retriever(request: Request) -> Retriever:
    """The process's retriever (made in the app's lifespan)."""
    retr: Retriever = request.app.state.retriever
    return retr
