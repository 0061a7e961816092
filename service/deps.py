"""FastAPI dependencies."""

from __future__ import annotations

from fastapi import Request

from service.runtime import Runtime


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def retriever(request: Request):
    from service.retriever import Retriever

    state = request.app.state
    if getattr(state, "retriever", None) is None:
        state.retriever = Retriever(state.runtime)
    return state.retriever
