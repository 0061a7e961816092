"""FastAPI dependencies."""

from __future__ import annotations

from fastapi import Request

from service.core.memory import Memory
from service.postgres import users
from service.retrieval import Retriever
from service.runtime import Runtime


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def core(request: Request) -> Memory:
    """The process's core, which every route calls (made in the app's lifespan)."""
    found: Memory = request.app.state.memory
    return found


def retriever(request: Request) -> Retriever:
    """The process's retriever (made in the app's lifespan)."""
    retr: Retriever = request.app.state.retriever
    return retr


async def not_being_erased(request: Request) -> None:
    """A route about one customer (``{user_identifier}`` in its path) answers 409 while
    that customer's erasure is pending (:func:`service.postgres.users.refuse_while_erasing`). Put
    after the access check, so a caller without the right key learns nothing."""
    user = request.path_params.get("user_identifier")
    if user is not None:
        await users.refuse_while_erasing(runtime(request).pool, user)
