"""A customer's rights beyond erasure: the audit trail of who read, exported, erased or
changed what (admin), the export of everything held about a customer, and their consent
(memory mode)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, StreamingResponse

from loft_memory.models import USER_ID_PATTERN, AuditPage, Consent, ConsentRequest, CustomerExport
from service.api.access import allow, identify
from service.api.deps import AuditQuery, audit_query, not_being_erased
from service.api.deps import core as memory_core
from service.api.middleware import request_id_of
from service.core.memory import Memory
from service.core.principal import ADMIN_ONLY, ANY_ROLE, Role

router = APIRouter(prefix="/memory", tags=["privacy"])


@router.get(
    "/audit",
    response_model=AuditPage,
    summary="The audit trail: who read, exported, erased, changed consent or deleted memories, newest first",
    dependencies=[Depends(allow(*ADMIN_ONLY))],
)
async def audit_trail(asked: AuditQuery = Depends(audit_query), core: Memory = Depends(memory_core)) -> AuditPage:
    """Open to admins while a customer's erasure is pending: the trail holds nothing of
    the customer but the keyed hash, and shows the erasure itself."""
    return await core.audit_trail(
        customer=asked.customer,
        action=asked.action,
        since=asked.since,
        until=asked.until,
        limit=asked.limit,
        cursor=asked.cursor,
    )


@router.get(
    "/user/{user_identifier}/export",
    response_model=CustomerExport,
    summary="Everything held about a customer in both stores, as one streamed JSON document",
    dependencies=[Depends(allow(Role.ADMIN, Role.CUSTOMER)), Depends(not_being_erased)],
)
async def export_customer(
    request: Request,
    user_identifier: str = Path(pattern=USER_ID_PATTERN, description="the customer's identifier"),
    core: Memory = Depends(memory_core),
) -> StreamingResponse:
    """Admin keys, and a customer key for its own customer (a chat key may not: the export
    is the customer's right, not the chat's). The document is streamed as it is read
    (``docs/export.schema.json``); its ``manifest`` counts rows per table and nodes per
    label under the keys an erasure receipt uses. The audit entry is written before the
    first byte."""
    by, rid = identify(request), request_id_of(request.scope)
    document = await core.export(user_identifier, by=by, request_id=rid)
    return StreamingResponse(
        document,
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="loft-export-{user_identifier}.json"'},
    )


@router.get(
    "/user/{user_identifier}/consent",
    response_model=Consent,
    summary="The customer's memory mode: full, session or off",
    dependencies=[Depends(allow(*ANY_ROLE)), Depends(not_being_erased)],
)
async def get_consent(
    user_identifier: str = Path(pattern=USER_ID_PATTERN, description="the customer's identifier"),
    core: Memory = Depends(memory_core),
) -> Consent:
    """A customer never seen is in ``full`` mode (the default)."""
    return Consent(user_identifier=user_identifier, mode=await core.memory_mode(user_identifier))


@router.put(
    "/user/{user_identifier}/consent",
    response_model=Consent,
    summary="Change the customer's memory mode; lowering it erases what the lower mode would not keep",
    responses={202: {"model": Consent, "description": "lowered: the erasure it ran is pending (a store is away)"}},
    dependencies=[Depends(allow(*ANY_ROLE)), Depends(not_being_erased)],
)
async def put_consent(
    body: ConsentRequest,
    request: Request,
    user_identifier: str = Path(pattern=USER_ID_PATTERN, description="the customer's identifier"),
    core: Memory = Depends(memory_core),
) -> JSONResponse:
    """``full`` → ``session`` or ``off``, and ``session`` → ``off``, erase everything held
    about the customer (the current session's turns too: the conversation goes on in a new
    session) through the erasure machinery, and the answer carries its receipt. Raising the
    mode erases nothing. The mode itself is kept under the customer's keyed hash, so it
    outlives that erasure."""
    changed = await core.set_memory_mode(
        user_identifier, body.mode, by=identify(request), request_id=request_id_of(request.scope)
    )
    receipt = changed.receipt.wire() if changed.receipt is not None else None
    answer = Consent(
        user_identifier=user_identifier,
        mode=changed.mode,
        receipt=receipt.model_dump(mode="json") if receipt is not None else None,
    )
    pending = receipt is not None and receipt.status != "complete"
    return JSONResponse(answer.model_dump(mode="json"), status_code=202 if pending else 200)
