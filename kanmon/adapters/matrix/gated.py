"""The adapter's side of the adapter protocol (SPEC §11): register with gated, post messages and chats to it.

Every call is retried while gated is down or answers 5xx (tenacity, exponential with jitter, capped at 30 s, for as
long as it takes: an event the adapter has not handed over must not be dropped, and the sync token does not move
past it meanwhile). A 401 means the token was rotated or gated forgot it: the adapter registers again and retries.
Any other 4xx is gated refusing that one message for good: it is logged and skipped, so one bad event cannot stall
a room forever.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential, wait_random

from kanmon import redaction
from kanmon.adapters.errors import AdapterError

__all__ = ["GatedClient", "GatedRefused"]

logger = logging.getLogger(__name__)


class GatedRefused(AdapterError):
    """gated answered 4xx: the request is wrong and will stay wrong (the message says why)."""


class _Retry(AdapterError):
    """gated is unreachable or busy: try again."""


class _Unauthorized(AdapterError):
    """The adapter's token is not (or no longer) valid."""


class GatedClient:
    """Talks to one gated: ``base_url`` is its HTTP surface, ``registration`` the body of ``/v1/channels/register``."""

    def __init__(
        self,
        base_url: str,
        channel_secret: str,
        registration: Mapping[str, Any],
        http: httpx.AsyncClient,
        *,
        max_wait: float = 30.0,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._secret = channel_secret
        self._registration = dict(registration)
        self._http = http
        self._max_wait = max_wait
        self._token: str | None = None
        redaction.remember(channel_secret)

    async def register(self) -> None:
        """Register (again): the new token replaces the old. Raises :class:`GatedRefused` for a 4xx."""
        answer = await self._retrying(self._post, "/v1/channels/register", self._registration, self._secret)
        token = answer.get("token")
        if not isinstance(token, str) or not token:
            raise GatedRefused("gated's registration answer carries no token")
        redaction.remember(token)
        self._token = token
        logger.info("registered with gated at %s as %s", self._base, self._registration.get("name"))

    async def post_message(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """Hand one message to gated; its answer (``seq``, ``duplicate``), or None when gated refused it."""
        return await self._authorized("/v1/messages", body)

    async def post_chat(self, body: Mapping[str, Any]) -> None:
        """Tell gated a chat's name and whether it is a group."""
        await self._authorized("/v1/chats", body)

    async def _authorized(self, path: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        while True:
            if self._token is None:
                await self.register()
            assert self._token is not None
            try:
                return await self._retrying(self._post, path, body, self._token)
            except _Unauthorized:
                logger.warning("gated no longer knows this adapter's token; registering again")
                self._token = None
            except GatedRefused as exc:
                logger.error("gated refused %s %s: %s", path, body.get("id") or body.get("chat_jid"), exc)
                return None

    async def _retrying(self, call: Any, *args: Any) -> dict[str, Any]:
        retrying = AsyncRetrying(
            wait=wait_exponential(multiplier=0.2, max=self._max_wait) + wait_random(0, 0.2),
            retry=retry_if_exception_type(_Retry),
            before_sleep=self._log_retry,
            reraise=True,
        )
        result: dict[str, Any] = await retrying(call, *args)
        return result

    @staticmethod
    def _log_retry(state: Any) -> None:
        if state.attempt_number in {1, 5} or state.attempt_number % 20 == 0:
            outcome = state.outcome.exception() if state.outcome is not None else None
            logger.warning("gated not reachable (attempt %d), retrying: %s", state.attempt_number, outcome)

    async def _post(self, path: str, body: Mapping[str, Any], bearer: str) -> dict[str, Any]:
        try:
            response = await self._http.post(
                self._base + path, json=dict(body), headers={"Authorization": f"Bearer {bearer}"}
            )
        except httpx.HTTPError as exc:
            raise _Retry(f"{type(exc).__name__} from {self._base}{path}") from None
        status = response.status_code
        if status == 401 and bearer != self._secret:
            raise _Unauthorized
        if status in {408, 425, 429} or status >= 500:
            raise _Retry(f"gated answered {status}")
        if status >= 400:
            raise GatedRefused(f"{status}: {redaction.redact(response.text[:300])}")
        answer = response.json()
        return answer if isinstance(answer, dict) else {}
