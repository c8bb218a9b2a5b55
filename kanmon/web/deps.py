"""What every route of the HTTP surface may depend on: the gateway, the web settings, and the drain switch."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import HTTPException, Request

from kanmon.gateway import Gateway

__all__ = ["WebConfig", "accepting_writes", "get_config", "get_gateway"]


@dataclass(frozen=True, kw_only=True)
class WebConfig:
    """The HTTP surface's settings (SPEC §11, §12), plain values filled in by gated."""

    channel_secret: str = field(default="", repr=False)  # empty: adapter registration is refused
    max_body_bytes: int = 1024 * 1024
    trusted_sender_header: str = ""  # a header set by a trusted proxy naming the web user; empty: anonymous
    openai_timeout: float = 300.0  # seconds a chat completion waits for the agent's replies before 504
    max_upload_bytes: int = 10 << 20  # largest file uploaded in the web chat (attachments.max_bytes)


def get_gateway(request: Request) -> Gateway:
    """The gateway this app serves."""
    gateway: Gateway = request.app.state.gateway
    return gateway


def get_config(request: Request) -> WebConfig:
    """The web settings."""
    config: WebConfig = request.app.state.config
    return config


def accepting_writes(request: Request) -> None:
    """Refuse new messages unless gated is serving (SPEC §14): 503 while it starts, stands by, waits for its store,
    or drains, so a well-behaved sender retries later."""
    if request.app.state.draining:
        raise HTTPException(status_code=503, detail="gated is shutting down; retry shortly")
    gateway: Gateway = request.app.state.gateway
    if not gateway.active:
        raise HTTPException(status_code=503, detail="gated is not serving yet; retry shortly")
