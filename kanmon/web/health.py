"""Health and metrics (SPEC §12): /healthz (alive), /readyz (able to work, or why not), /metrics (Prometheus)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict

from kanmon.gateway import Gateway
from kanmon.store import StoreError
from kanmon.web.deps import get_gateway

__all__ = ["Health", "Readiness", "router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

GatewayDep = Annotated[Gateway, Depends(get_gateway)]


class Health(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"ok": True}]})

    ok: bool


class Readiness(BaseModel):
    """Whether gated can work, and if not, why."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"ready": True, "reasons": []},
                {"ready": False, "reasons": ["the store is unreachable: connection refused"]},
            ]
        }
    )

    ready: bool
    reasons: list[str]


METRICS_EXAMPLE = (
    "# HELP kanmon_messages_ingested_total Inbound messages read by the loop.\n"
    "# TYPE kanmon_messages_ingested_total counter\n"
    'kanmon_messages_ingested_total{platform="web"} 12.0\n'
)


@router.get("/healthz", summary="The process is alive.")
async def healthz() -> Health:
    return Health(ok=True)


@router.get(
    "/readyz",
    summary="Ready: the store and the runtimes in use answer, and the loop ticked in the last 3 poll intervals.",
    responses={200: {"model": Readiness}, 503: {"model": Readiness, "description": "Not ready; `reasons` says why."}},
)
async def readyz(gateway: GatewayDep) -> JSONResponse:
    reasons = await gateway.readiness()
    return JSONResponse({"ready": not reasons, "reasons": reasons}, status_code=503 if reasons else 200)


@router.get(
    "/metrics",
    summary="Prometheus metrics (text format).",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}, "example": METRICS_EXAMPLE}}}},
)
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
