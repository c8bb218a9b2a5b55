"""Health and metrics (SPEC §12): /healthz (alive), /readyz (able to work, or why not), /metrics (Prometheus)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kanmon.gateway import Gateway
from kanmon.store import StoreError
from kanmon.web.deps import get_gateway

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

GatewayDep = Annotated[Gateway, Depends(get_gateway)]


@router.get("/healthz", summary="The process is alive.")
async def healthz() -> dict[str, bool]:
    return {"ok": True}


@router.get(
    "/readyz",
    summary="Ready: the store and the runtimes in use answer, and the loop ticked in the last 3 poll intervals.",
    responses={503: {"description": "Not ready; `reasons` says why."}},
)
async def readyz(gateway: GatewayDep) -> JSONResponse:
    reasons = await gateway.readiness()
    return JSONResponse({"ready": not reasons, "reasons": reasons}, status_code=503 if reasons else 200)


@router.get("/metrics", summary="Prometheus metrics (text format).", response_class=Response)
async def metrics(gateway: GatewayDep) -> Response:
    await _refresh(gateway)
    return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def _refresh(gateway: Gateway) -> None:
    """The series counted on scrape: whether the store answers, and the delivery backlog (one grouped read; when the
    store does not answer, the backlog keeps its last values and ``kanmon_store_up`` says 0)."""
    reachable = gateway.db.outage is None
    if reachable and gateway.active:
        try:
            await gateway.delivery.count_backlog()
        except StoreError as exc:
            logger.debug("delivery backlog not counted: %s", exc)
            reachable = gateway.db.outage is None
    gateway.metrics.store_up.set(1 if reachable else 0)
