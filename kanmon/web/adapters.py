"""The channel-adapter API (SPEC §11), compatible with arizuko's adapters: register, ingest, chats, channels."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["channel adapters"])
