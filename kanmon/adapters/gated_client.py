"""An adapter's side of the adapter protocol (SPEC §11): registering with gated and handing it what arrives.

Gated being down is not an error but a wait: registration and every message are retried (tenacity, exponential
with jitter, capped at ``max_wait`` seconds) until gated answers or the adapter stops, so an update is never dropped
because gated restarted. A token gated no longer knows (``401``: gated's store was replaced, another process
registered under this name) is renewed by registering again. Only an answer saying the message itself is wrong
(``400``, ``413``, ``422``) is final: :class:`MessageRefused`, which the caller logs and moves past.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential, wait_random

from kanmon import redaction
from kanmon.adapters.errors import AdapterError, MessageRefused, Stopped
from kanmon.errors import InvalidInput

__all__ = ["GatedClient", "MessageRefused", "RegistrationRefused", "Stopped"]

logger = logging.getLogger(__name__)

_REFUSED = frozenset({400, 413, 422})


class RegistrationRefused(InvalidInput):
    """Gated refused the registration for good (a wrong channel secret, a JID prefix another adapter owns)."""


class _Retry(AdapterError):
    """A failure worth waiting out (gated unreachable, starting, draining, overloaded, or our token unknown)."""

    def __init__(self, reason: str, *, reregister: bool = False) -> None:
        super().__init__(reason)
        self.reregister = reregister


class GatedClient:
    """Registers one adapter with gated at ``base_url`` and posts to its API with the token that gives."""

    def __init__(
        self,
        base_url: str,
        channel_secret: str,
        registration: dict[str, Any],
        stopping: asyncio.Event,
        *,
        timeout: float = 30.0,
        max_wait: float = 5.0,
    ) -> None:
        redaction.remember(channel_secret)
        self._secret = channel_secret
        self._registration = registration
        self._stopping = stopping
        self._max_wait = max_wait
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout, follow_redirects=False)
        self._token: str | None = None
        self._outage: str | None = None

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    async def register(self) -> None:
        """Register (or re-register, which rotates the token), waiting for gated as long as it takes.

        Raises :class:`RegistrationRefused` when gated says no (401/403 on the secret, 409 on a prefix, 422 on the
        body), :class:`Stopped` when the adapter stops first.
        """
        await self._retrying(self._register_once)

    async def post_message(self, body: dict[str, Any]) -> int:
        """Store ``body`` through ``POST /v1/messages``; returns its seq once gated has stored it (a repeat of an id
        gated has answers the same seq). Raises :class:`MessageRefused` or :class:`Stopped`."""
        answer = await self._retrying(self._post, "/v1/messages", body)
        return int(answer.get("seq", 0))

    async def post_chat(self, body: dict[str, Any]) -> None:
        """Tell gated a chat's name and kind (``POST /v1/chats``), waiting for gated like a message."""
        await self._retrying(self._post, "/v1/chats", body)

    # ------------------------------------------------------------------------------------------------ requests
    async def _retrying(self, attempt: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        retrying = AsyncRetrying(
            stop=lambda _state: self._stopping.is_set(),
            wait=wait_exponential(multiplier=0.2, max=self._max_wait) + wait_random(0, 0.2),
            retry=retry_if_exception_type(_Retry),
            before_sleep=self._waiting,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            result: Any = await retrying(attempt, *args)
        except _Retry:
            raise Stopped("stopping while gated was unreachable") from None
        if self._outage is not None:
            logger.info("gated answers again")
            self._outage = None
        return result

    async def _sleep(self, seconds: float) -> None:
        # a stop cuts the wait short
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return

    async def _waiting(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, _Retry) and error.reregister:
            self._token = None
        reason = str(error)
        if self._outage != reason:
            logger.warning("%s; retrying", reason)
            self._outage = reason

    async def _register_once(self) -> None:
        answer = await self._request("/v1/channels/register", self._registration, self._secret)
        if answer.status_code in {401, 403, 409, 422}:
            raise RegistrationRefused(f"gated refused the registration: {answer.status_code} {_detail(answer)}")
        self._check(answer)
        token = str(answer.json()["token"])
        redaction.remember(token)
        self._token = token
        logger.info("registered with gated as %s", self._registration.get("name"))

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._token is None:
            await self._register_once()
        assert self._token is not None
        answer = await self._request(path, body, self._token)
        if answer.status_code == 401:
            raise _Retry("gated no longer knows this adapter's token; registering again", reregister=True)
        if answer.status_code in _REFUSED:
            raise MessageRefused(f"gated refused it: {answer.status_code} {_detail(answer)}")
        self._check(answer)
        result: dict[str, Any] = answer.json()
        return result

    async def _request(self, path: str, body: dict[str, Any], bearer: str) -> httpx.Response:
        try:
            return await self._http.post(path, json=body, headers={"Authorization": f"Bearer {bearer}"})
        except httpx.HTTPError as exc:
            raise _Retry(f"gated unreachable at {self._http.base_url}: {type(exc).__name__}") from None

    def _check(self, answer: httpx.Response) -> None:
        if answer.status_code >= 300:
            raise _Retry(f"gated answered {answer.status_code}: {_detail(answer)}")


def _detail(answer: httpx.Response) -> str:
    try:
        detail = answer.json().get("detail", "")
    except (ValueError, AttributeError):
        detail = answer.text
    return redaction.redact(str(detail))[:200]
