"""FastAPI dependencies."""

from __future__ import annotations

from fastapi import Request

from service.runtime import Runtime


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def retriever(request: Request):
    """The process's retriever (made in the app's lifespan)."""
    return request.app.state.retriever
