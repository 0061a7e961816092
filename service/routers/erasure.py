"""Erasure: forget a customer in every store, cache and queue, and read the receipts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from service import audit, erasure
from service.access import ADMIN_ONLY, allow, identify
from service.deps import runtime
from service.errors import NotFound
from service.middleware import request_id_of
from service.runtime import Runtime
from service.schemas import USER_ID_PATTERN

router = APIRouter(tags=["erasure"], dependencies=[Depends(allow(*ADMIN_ONLY))])


class ErasureReceipt(BaseModel):
    """What an erasure deleted and what the re-check of both stores found afterwards."""

    receipt_id: uuid.UUID
    status: Literal["pending", "complete"] = Field(
        description="complete: both stores were re-checked and nothing of the customer is left; "
        "pending: a store was unavailable, a worker finishes the erasure when it returns"
    )
    counts: dict[str, Any] = Field(
        description="rows deleted per PostgreSQL table, nodes and relationships deleted in Neo4j, cache entries dropped"
    )
    verification: dict[str, Any] = Field(description="what the re-check found after deleting (all zeros when complete)")
    requested_at: datetime
    completed_at: datetime | None
    error: str | None = Field(description="why the erasure is still pending")

    @classmethod
    def of(cls, receipt: erasure.Receipt) -> ErasureReceipt:
        return cls(
            receipt_id=receipt.receipt_id,
            status=receipt.status,
            counts=receipt.counts,
            verification=receipt.verification,
            requested_at=receipt.requested_at,
            completed_at=receipt.completed_at,
            error=receipt.error,
        )


class ErasureList(BaseModel):
    receipts: list[ErasureReceipt]


@router.delete(
    "/memory/user/{user_identifier}",
    response_model=ErasureReceipt,
    summary="Forget a customer: PostgreSQL, Neo4j, caches and queued work, with a receipt",
    responses={202: {"model": ErasureReceipt, "description": "a store is unavailable: the erasure is pending"}},
)
async def erase_customer(
    request: Request,
    user_identifier: str = Path(pattern=USER_ID_PATTERN, description="the customer's identifier"),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    receipt = ErasureReceipt.of(await erasure.erase(rt, user_identifier, graph_timeout_s=20.0))
    await audit.record(
        rt.pool,
        rt.erasure_key,
        identify(request),
        "erase",
        user_identifier,
        request_id=request_id_of(request.scope),
        detail={"receipt_id": str(receipt.receipt_id), "status": receipt.status},
    )
    return JSONResponse(receipt.model_dump(mode="json"), status_code=200 if receipt.status == "complete" else 202)


@router.get("/memory/erasures/{receipt_id}", response_model=ErasureReceipt, summary="One erasure receipt")
async def get_receipt(receipt_id: uuid.UUID, rt: Runtime = Depends(runtime)) -> ErasureReceipt:
    receipt = await erasure.get_receipt(rt.pool, receipt_id)
    if receipt is None:
        raise NotFound(f"no erasure receipt {receipt_id}")
    return ErasureReceipt.of(receipt)


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
    return ErasureList(receipts=[ErasureReceipt.of(r) for r in found])
