"""The built-in web chat (SPEC §11): post to ``web:<folder>``, follow a topic as Server-Sent Events, the chat page."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(tags=["web chat"])
