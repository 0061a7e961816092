"""Erasure: forget a customer in every store, cache and queue, and read the receipts."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from loft_memory.models import USER_ID_PATTERN, ErasureList, ErasureReceipt
from service import erasure
from service.access import ADMIN_ONLY, allow
from service.deps import runtime
from service.errors import NotFound
from service.runtime import Runtime

router = APIRouter(tags=["erasure"], dependencies=[Depends(allow(*ADMIN_ONLY))])


@router.delete(
    "/memory/user/{user_identifier}",
    response_model=ErasureReceipt,
    summary="Forget a customer: PostgreSQL, Neo4j, caches and queued work, with a receipt",
    responses={202: {"model": ErasureReceipt, "description": "a store is unavailable: the erasure is pending"}},
)
async def erase_customer(
    user_identifier: str = Path(pattern=USER_ID_PATTERN, description="the customer's identifier"),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    receipt = (await erasure.erase(rt, user_identifier, graph_timeout_s=20.0)).wire()
    return JSONResponse(receipt.model_dump(mode="json"), status_code=200 if receipt.status == "complete" else 202)


@router.get("/memory/erasures/{receipt_id}", response_model=ErasureReceipt, summary="One erasure receipt")
async def get_receipt(receipt_id: uuid.UUID, rt: Runtime = Depends(runtime)) -> ErasureReceipt:
    receipt = await erasure.get_receipt(rt.pool, receipt_id)
    if receipt is None:
        raise NotFound(f"no erasure receipt {receipt_id}")
    return receipt.wire()


@router.get(
    "/memory/erasures", response_model=ErasureList, summary="Recent erasure receipts (of one customer, if named)"
)
async def list_receipts(
    user_identifier: str | None = Query(
        None,
        pattern=USER_ID_PATTERN,
        description="only this customer's receipts (matched through the keyed hash; the identifier is not stored)",
    ),
    limit: int = Query(20, ge=1, le=200),
    rt: Runtime = Depends(runtime),
) -> ErasureList:
    found = await erasure.receipts(rt, user=user_identifier, limit=limit)
    return ErasureList(receipts=[r.wire() for r in found])
