"""The order feed: the shop's system sends a customer's orders; the chat page lists them."""

from __future__ import annotations

from typing import cast

import asyncpg
from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from graph import catalog as graph_catalog
from loft_memory.models import USER_ID_PATTERN, ErrorResponse, OrderAccepted, OrderPage, OrderRequest
from service.api.access import allow
from service.api.deps import not_being_erased, runtime
from service.core.principal import ADMIN_ONLY, ANY_ROLE
from service.errors import InvalidInput
from service.postgres import orders
from service.runtime import Runtime

router = APIRouter(prefix="/v1/customers", tags=["orders"])

UserPath = Path(pattern=USER_ID_PATTERN, description="the customer's identifier")


@router.post(
    "/{user_identifier}/orders",
    response_model=OrderAccepted,
    status_code=201,
    summary="Record an order from the shop's system (idempotent on order_id)",
    dependencies=[Depends(allow(*ADMIN_ONLY))],
    responses={
        200: {"model": OrderAccepted, "description": "the same order again: nothing changed"},
        409: {
            "model": ErrorResponse,
            "description": "this order_id was already used for a different order, or the customer is being erased",
        },
        410: {
            "model": ErrorResponse,
            "description": "this order was erased with its customer; it is not recorded again",
        },
    },
)
async def post_order(
    body: OrderRequest, user_identifier: str = UserPath, rt: Runtime = Depends(runtime)
) -> JSONResponse:
    skus = [line.sku for line in body.lines]
    known = await graph_catalog.known_skus(rt.graph_store, skus)
    unknown = sorted(set(skus) - known)
    if unknown:
        raise InvalidInput(f"unknown SKU(s): {', '.join(unknown)}; nothing was recorded")
    order = orders.Order(
        body.order_id,
        body.placed_at,
        tuple(orders.Line(x.sku, x.qty, x.unit_price) for x in body.lines),
    )
    async with rt.pool.acquire() as conn, conn.transaction():
        created = await orders.record(
            cast(asyncpg.Connection, conn), user_identifier, order, tombstone_key=rt.erasure_key
        )
    accepted = OrderAccepted(
        order_id=order.order_id,
        user_identifier=user_identifier,
        created=created,
        lines=len(order.lines),
        total=float(order.total),
    )
    return JSONResponse(accepted.model_dump(), status_code=201 if created else 200)


@router.get(
    "/{user_identifier}/orders",
    response_model=OrderPage,
    summary="A customer's orders from the order feed, newest first",
    dependencies=[Depends(allow(*ANY_ROLE)), Depends(not_being_erased)],
)
async def list_orders(
    user_identifier: str = UserPath,
    limit: int = Query(50, ge=1, le=200),
    rt: Runtime = Depends(runtime),
) -> OrderPage:
    return OrderPage(user_identifier=user_identifier, orders=await orders.list_for(rt.pool, user_identifier, limit))
