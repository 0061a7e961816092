"""Erasure: forget a customer in every store, cache and queue, and read the receipts."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from loft_memory.models import USER_ID_PATTERN, ErasureList, ErasureReceipt
from service.api.access import allow, identify
from service.api.deps import core as memory_core
from service.api.middleware import request_id_of
from service.core.memory import Memory
from service.core.principal import ADMIN_ONLY

router = APIRouter(tags=["erasure"], dependencies=[Depends(allow(*ADMIN_ONLY))])


@router.delete(
    "/memory/user/{user_identifier}",
    response_model=ErasureReceipt,
    summary="Forget a customer: PostgreSQL, Neo4j, caches and queued work, with a receipt",
    responses={202: {"model": ErasureReceipt, "description": "a store is unavailable: the erasure is pending"}},
)
async def erase_customer(
    request: Request,
    user_identifier: str = Path(pattern=USER_ID_PATTERN, description="the customer's identifier"),
    core: Memory = Depends(memory_core),
) -> JSONResponse:
    receipt = (await core.erase(user_identifier, by=identify(request), request_id=request_id_of(request.scope))).wire()
    return JSONResponse(receipt.model_dump(mode="json"), status_code=200 if receipt.status == "complete" else 202)


@router.get("/memory/erasures/{receipt_id}", response_model=ErasureReceipt, summary="One erasure receipt")
async def get_receipt(receipt_id: uuid.UUID, core: Memory = Depends(memory_core)) -> ErasureReceipt:
    return (await core.receipt(receipt_id)).wire()


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
    core: Memory = Depends(memory_core),
) -> ErasureList:
    found = await core.receipts(user=user_identifier, limit=limit)
    return ErasureList(receipts=[r.wire() for r in found])
