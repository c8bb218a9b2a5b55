"""Delivery to HTTP channel adapters (SPEC §11): one :class:`HttpChannelDeliverer` per registered channel.

The outbound row is the outbox. A deliverer only tries to hand one row to its adapter, by ``POST <url>/send``; the
:class:`~kanmon.gateway.delivery.DeliveryWorker` records what came of it (``sent``, ``pending`` with a growing
``deliver_after``, or ``failed`` past the deadline), so a retry survives a restart (arizuko kept failed sends in an
in-memory outbox that was never replayed).

Every request carries an idempotency key derived from the row, the same on each retry and after a restart, so an
adapter that took a message and then failed to answer can recognise the repeat and drop it. A few quick tries
(tenacity, exponential with jitter) absorb a blip within one attempt; longer outages are the worker's backoff across
passes. An answer in 4xx (other than 408, 425 and 429) is the adapter saying no: retrying cannot help, so the row
fails at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential, wait_random

from kanmon import redaction
from kanmon.gateway.delivery import DeliveryError
from kanmon.store import Channel, Message

__all__ = ["AdapterDeliveryConfig", "HttpChannelDeliverer", "idempotency_key"]

# Answers that mean "not now" rather than "no": request timeout, too early, too many requests (and every 5xx).
TRANSIENT_STATUSES = frozenset({408, 425, 429})
_SNIPPET = 200  # characters of an adapter's error answer kept in delivery_error


@dataclass(frozen=True, kw_only=True)
class AdapterDeliveryConfig:
    """How kanmon talks to channel adapters: plain values, filled in by gated from its settings."""

    channel_secret: str = field(default="", repr=False)  # sent as ``Authorization: Bearer``; never logged
    timeout: float = 30.0  # seconds per request
    retry_base: float = 1.0  # first backoff between passes; doubles per failed attempt
    deadline: float = 24 * 3600.0  # seconds after a row was stored when it stops being retried and fails
    quick_tries: int = 3  # requests within one attempt before it counts as failed
    quick_wait: float = 0.2  # first wait between quick tries (exponential with jitter)
    quick_wait_max: float = 2.0


def idempotency_key(instance: str, message: Message) -> str:
    """The stable key of an outbound row: the same on every retry and after a restart of the same store."""
    return f"{instance or 'kanmon'}-{message.seq}"


class _Transient(Exception):
    """A failure worth another quick try (no connection, a timeout, 429, 5xx)."""


class HttpChannelDeliverer:
    """Sends the outbound rows of one registered channel adapter by ``POST <url>/send``."""

    def __init__(
        self, channel: Channel, client: httpx.AsyncClient, config: AdapterDeliveryConfig, *, instance: str
    ) -> None:
        self.name = channel.name
        self.prefixes = tuple(channel.jid_prefixes)
        self.channel = channel
        self._client = client
        self._config = config
        self._instance = instance
        self._send_url = channel.url.rstrip("/") + "/send"

    def body(self, message: Message) -> dict[str, Any]:
        """The JSON body of the ``/send`` request for ``message`` (arizuko's fields plus the idempotency key, and the
        reply's ``attachments`` when it has any)."""
        body: dict[str, Any] = {
            "chat_jid": message.chat_jid,
            "content": message.content,
            "format": "markdown",
            "reply_to": message.reply_to_id,
            "thread_id": message.topic or None,  # the platform thread the conversation came from, if any
            "idempotency_key": idempotency_key(self._instance, message),
        }
        if message.attachments:
            body["attachments"] = message.attachments
        return body

    async def send(self, message: Message) -> str | None:
        """Deliver ``message``; return the adapter's ``id`` for it; raise DeliveryError if it was not taken."""
        if self.channel.capabilities.get("send_text") is False:
            raise DeliveryError(f"adapter {self.name} does not take text (send_text is false)", transient=False)
        body = self.body(message)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(max(1, self._config.quick_tries)),
            wait=wait_exponential(multiplier=self._config.quick_wait, max=self._config.quick_wait_max)
            + wait_random(0, self._config.quick_wait),
            retry=retry_if_exception_type(_Transient),
            reraise=True,
        )
        try:
            response: httpx.Response = await retrying(self._post, body)
        except _Transient as exc:
            raise DeliveryError(str(exc), transient=True) from None
        return _platform_id(response)

    async def _post(self, body: dict[str, Any]) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {self._config.channel_secret}",
            "Idempotency-Key": str(body["idempotency_key"]),
        }
        try:
            response = await self._client.post(self._send_url, json=body, headers=headers, timeout=self._config.timeout)
        except httpx.TimeoutException:
            raise _Transient(f"adapter {self.name} did not answer within {self._config.timeout:g}s") from None
        except httpx.TransportError as exc:
            raise _Transient(f"adapter {self.name} unreachable at {self._send_url}: {type(exc).__name__}") from None
        status = response.status_code
        if status in TRANSIENT_STATUSES or status >= 500:
            raise _Transient(f"adapter {self.name} answered {status}: {_snippet(response)}")
        if not 200 <= status < 300:
            raise DeliveryError(
                f"adapter {self.name} refused the message: {status}: {_snippet(response)}", transient=False
            )
        return response


def _platform_id(response: httpx.Response) -> str | None:
    """The ``id`` an adapter answered with (arizuko's ``{"ok": true, "id": …}``), if any."""
    try:
        answer = response.json()
    except ValueError:
        return None
    if isinstance(answer, dict):
        value = answer.get("id")
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


def _snippet(response: httpx.Response) -> str:
    # it goes into delivery_error and the logs: an adapter that echoes the credentials it got must not put the
    # channel secret there (SPEC §14). Redacted before the cut, so the cut cannot leave a piece of a secret.
    text = redaction.redact(response.text.strip().replace("\n", " "))
    return text[:_SNIPPET] or response.reason_phrase
