"""``GET /metrics``: the API's Prometheus metrics (admin; open on a keyless localhost service).

The worker is another process and serves its own counters (``loftmem worker
--metrics-port``); see :mod:`service.metrics` for what each series means.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from service import metrics
from service.api.access import allow
from service.api.deps import runtime
from service.core.principal import ADMIN_ONLY
from service.runtime import Runtime

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics: requests, context stages, queue, embedder, store health (admin)",
    response_class=Response,
    dependencies=[Depends(allow(*ADMIN_ONLY))],
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "text format 0.0.4"}},
)
async def prometheus_metrics(rt: Runtime = Depends(runtime)) -> Response:
    return Response(await metrics.scrape(rt), media_type=metrics.CONTENT_TYPE)
