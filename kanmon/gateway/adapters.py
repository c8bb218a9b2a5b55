"""Delivery over HTTP (SPEC §6.4, §11): to channel adapters, and to the daemons of ``daemon:<name>`` routes.

One class, :class:`HttpDeliverer`, sends the outbound rows of one destination: a registered channel adapter
(``POST <url>/send``, :func:`adapter_deliverer`) or a configured daemon (``POST <its URL>``, :func:`daemon_deliverer`).
The two differ only in the URL, the JSON body and whether the channel secret goes along.

The outbound row is the outbox. A deliverer only tries to hand one row over; the
:class:`~kanmon.gateway.delivery.DeliveryWorker` records what came of it (``sent``, ``pending`` with a growing
``deliver_after``, or ``failed`` past the deadline), so a retry survives a restart (arizuko kept failed sends in an
in-memory outbox that was never replayed).

Every request carries an idempotency key derived from the row (body field ``idempotency_key`` and header
``Idempotency-Key``), the same on each retry and after a restart, so a receiver that took a message and then failed
to answer can recognise the repeat and drop it. A few quick tries (tenacity, exponential with jitter) absorb a blip
within one attempt; longer outages are the worker's backoff across passes. A retried answer (408, 425, 429, 5xx) with
``Retry-After`` (seconds or an HTTP date, RFC 9110 §10.2.3, read against the injected clock) ends the attempt at
once, and the next comes no earlier than it asked (the policy caps it at ``max_backoff``: see
:meth:`~kanmon.gateway.delivery_policy.DeliveryPolicy.after_failure`); a platform's flood control that asked for two
minutes got three requests at once and then one every few seconds. An answer in 4xx (other than 408, 425 and
429) is the receiver saying no: retrying cannot help, so the row fails at once. A 3xx is not followed (the request
carries the channel secret, and where it may go is the operator's call, not the receiver's) and is no refusal either:
the receiver never saw the reply. It is a transient failure whose error names the ``Location``, without quick tries;
the row waits with backoff until the deadline, so an operator who corrects the URL loses nothing (a moved adapter
lost every reply when a redirect failed rows at once). A 2xx answer may be
``{"ok": true, "id": "<platform message id>"}``; the id is stored in the row's ``platform_message_id``.

Daemons (:func:`daemon_body`) receive the message the route sent them as it was stored, with the chat it came from,
not the outbox row. They do not get the channel secret: it is the credential that registers adapters, and a daemon
is an arbitrary URL from the configuration. A daemon that wants kanmon to authenticate puts credentials in its URL
(``https://kanmon:TOKEN@host/hook``), which httpx sends as HTTP Basic; the URL's password never shows in logs.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import functools
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential, wait_random

from kanmon import redaction
from kanmon.clock import Clock, SystemClock
from kanmon.gateway.adapter_files import AdapterFiles
from kanmon.gateway.delivery import DeliveryError, DeliveryPolicy
from kanmon.store import Channel, Message

if TYPE_CHECKING:
    import httpx  # imported where used: gated starts without it (see kanmon.lazy)

__all__ = [
    "FILE_BYTES_PER_SECOND",
    "MAX_FILE_ALLOWANCE",
    "AdapterDeliveryConfig",
    "Body",
    "HttpDeliverer",
    "adapter_body",
    "adapter_deliverer",
    "daemon_body",
    "daemon_deliverer",
    "file_allowance",
    "idempotency_key",
]

# Answers that mean "not now" rather than "no": request timeout, too early, too many requests (and every 5xx). Every 3xx
# means "not here": not followed, tried again with backoff (HttpDeliverer._post). Any other non-2xx is a refusal.
TRANSIENT_STATUSES = frozenset({408, 425, 429})
_SNIPPET = 200  # characters of a receiver's error answer kept in delivery_error
#: An adapter's request may wait for its answer one second per MiB of the reply's files longer (fetch, upload), at
#: most 600 s: under ``media.url_ttl``'s default (900 s), so its links (signed anew each try) still work at the end.
FILE_BYTES_PER_SECOND, MAX_FILE_ALLOWANCE = 1 << 20, 600.0

#: Builds the JSON body of one row's request from the row and its idempotency key.
Body = Callable[[Message, str], Awaitable[dict[str, Any]]]
#: Finds the stored message a daemon outbox row carries (None when it is gone).
FindOriginal = Callable[[Message], Awaitable[Message | None]]


@dataclass(frozen=True, kw_only=True)
class AdapterDeliveryConfig:
    """How kanmon talks to channel adapters and daemons: plain values, filled in by gated from its settings."""

    channel_secret: str = field(default="", repr=False)  # sent to adapters as ``Authorization: Bearer``; never logged
    timeout: float = 30.0  # seconds per request
    retry_base: float = 1.0  # first backoff between passes; doubles per failed attempt
    deadline: float = 24 * 3600.0  # seconds after a row was stored when it stops being retried and fails
    quick_tries: int = 3  # requests within one attempt before it counts as failed
    quick_wait: float = 0.2  # first wait between quick tries (exponential with jitter)
    quick_wait_max: float = 2.0
    chats_at_once: int = DeliveryPolicy.chats_at_once  # chats of one adapter with a send in flight at once
    typing_interval: float = 4.0  # seconds between /typing pings while a run works (kanmon.gateway.typing); 0: none

    def policy(self) -> DeliveryPolicy:
        """The delivery worker's retry policy these values make (:class:`~kanmon.gateway.delivery.DeliveryPolicy`)."""
        return DeliveryPolicy(retry_base=self.retry_base, deadline=self.deadline, chats_at_once=self.chats_at_once)


def file_allowance(body: dict[str, Any]) -> float:
    """Seconds a request with ``body`` may take beyond the timeout for the files it carries: their ``size`` (bytes,
    as :mod:`kanmon.gateway.adapter_files` gives it) at :data:`FILE_BYTES_PER_SECOND`, at most
    :data:`MAX_FILE_ALLOWANCE`; an entry without a whole, non-negative ``size`` adds nothing."""
    files = body.get("attachments")
    sizes = [entry.get("size") for entry in files if isinstance(entry, dict)] if isinstance(files, list) else []
    total = sum(size for size in sizes if type(size) is int and size > 0)
    return min(total / FILE_BYTES_PER_SECOND, MAX_FILE_ALLOWANCE)


def idempotency_key(prefix: str, message: Message) -> str:
    """The stable key of an outbound row, ``<prefix>-<seq>-<12 hex of sha256(id)>``: the same on every retry, after a
    restart and for every gated of the same store (``prefix``: the store's, Store.idempotency_prefix).

    The row's id is in it because seqs can come again: a store restored from a backup, or a PostgreSQL database made
    anew, hands out seqs it had handed out before, and an adapter that journaled ``<prefix>-<seq>`` took a new reply
    for the old one and posted nothing (an outside review). A new reply never has an old reply's id.
    """
    digest = hashlib.sha256(message.id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{prefix or 'kanmon'}-{message.seq}-{digest}"


class _Transient(DeliveryError):
    """A failure worth another quick try (no connection, a timeout, 429, 5xx)."""


class HttpDeliverer:
    """POSTs the outbound rows of one destination to ``url``, one request per row (see the module docstring).

    ``name`` labels metrics and logs (an adapter's name; ``daemon:<name>``); ``prefixes`` are the JID prefixes whose
    rows it sends, or with ``exact`` the whole JIDs. ``bearer``, when given, goes as ``Authorization: Bearer``.
    ``refusal``, when given, fails every row at once with that reason (an adapter that takes no text). ``clock``
    reads a ``Retry-After`` that is a date. With ``uploads`` (an adapter), a request may wait for its answer
    :func:`file_allowance` seconds longer than the timeout, while the receiver moves the files it carries.
    """

    def __init__(
        self,
        *,
        name: str,
        prefixes: Sequence[str],
        url: str,
        body: Body,
        client: httpx.AsyncClient,
        config: AdapterDeliveryConfig,
        instance: str,
        label: str,
        bearer: str | None = None,
        exact: bool = False,
        refusal: str | None = None,
        clock: Clock | None = None,
        uploads: bool = False,
    ) -> None:
        self.name = name
        self._uploads = uploads  # an adapter moves the files it is given: its requests get time for them
        self.prefixes = tuple(prefixes)
        self.exact = exact
        self.url = url
        self._body = body
        self._client = client
        self._config = config
        self._instance = instance
        self._label = label
        self._bearer = bearer
        self._refusal = refusal
        self._clock: Clock = clock or SystemClock()
        self._shown_url = _without_credentials(url)

    async def body(self, message: Message) -> dict[str, Any]:
        """The JSON body of the request for ``message``."""
        return await self._body(message, idempotency_key(self._instance, message))

    async def send(self, message: Message) -> str | None:
        """Deliver ``message``; return the receiver's ``id`` for it; raise DeliveryError if it was not taken."""
        if self._refusal is not None:
            raise DeliveryError(self._refusal, transient=False)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(max(1, self._config.quick_tries)),
            wait=wait_exponential(multiplier=self._config.quick_wait, max=self._config.quick_wait_max)
            + wait_random(0, self._config.quick_wait),
            retry=retry_if_exception_type(_Transient),
            reraise=True,
        )
        try:
            response: httpx.Response = await retrying(self._post, message)
        except _Transient as exc:
            raise DeliveryError(str(exc), transient=True) from None
        return _platform_id(response)

    async def _post(self, message: Message) -> httpx.Response:
        body = await self.body(message)  # each try anew: the links to its files are signed for this try
        allowance = file_allowance(body) if self._uploads else 0.0  # a daemon uploads nothing
        limit = self._config.timeout + allowance  # seconds of waiting for the answer (connecting: the plain timeout)
        headers = {"Idempotency-Key": str(body["idempotency_key"])}
        if self._bearer:  # none, or empty: no header (``Bearer `` alone is not a valid one)
            headers["Authorization"] = f"Bearer {self._bearer}"
        label = self._label
        import httpx

        try:
            timeout = httpx.Timeout(self._config.timeout, read=limit)
            response = await self._client.post(self.url, json=body, headers=headers, timeout=timeout)
        except httpx.TimeoutException:
            raise _Transient(f"{label} did not answer within {limit:g}s") from None
        except httpx.TransportError as exc:
            raise _Transient(f"{label} unreachable at {self._shown_url}: {type(exc).__name__}") from None
        except httpx.HTTPError as exc:  # its answer could not be read (DecodingError): whether it took the message
            # is unknown, so it is sent again, under the same idempotency key
            raise _Transient(f"{label} gave an answer that could not be read: {type(exc).__name__}") from None
        status = response.status_code
        if status in TRANSIENT_STATUSES or status >= 500:
            wait = _retry_after(response, self._clock.now())
            if wait is None:
                raise _Transient(f"{label} answered {status}: {_snippet(response)}")
            # not another quick try: the receiver said when (DeliveryError is not retried within the attempt)
            reason = f"{label} answered {status}, asking for {wait:.0f}s (Retry-After): {_snippet(response)}"
            raise DeliveryError(reason, transient=True, retry_after=wait)
        if 300 <= status < 400:
            # not another quick try: the next would be redirected too; the worker's backoff gives the operator time
            raise DeliveryError(
                f"{label} answered {status}, a redirect {_shown_location(response)}: redirects are not followed; "
                "tried again until kanmon has the right URL (an adapter registers it again, a daemon's is configured)",
                transient=True,
                retry_after=_retry_after(response, self._clock.now()),
            )
        if not 200 <= status < 300:
            raise DeliveryError(f"{label} refused the message: {status}: {_snippet(response)}", transient=False)
        return response


# ---------------------------------------------------------------------------------------------------- adapters
async def adapter_body(message: Message, key: str, files: AdapterFiles | None = None) -> dict[str, Any]:
    """The body of an adapter's ``/send``: arizuko's fields plus the idempotency key, and ``attachments`` when the
    reply carries files (``[{"url", "filename", "mime", …}]``: an agent's files as :mod:`kanmon.gateway.adapter_files`
    describes them when ``files`` is given)."""
    body: dict[str, Any] = {
        "chat_jid": message.chat_jid,
        "content": message.content,
        "format": "markdown",
        "reply_to": message.reply_to_id,
        "thread_id": message.topic or None,  # the platform thread the conversation came from, if any
        "idempotency_key": key,
    }
    if message.attachments:
        body["attachments"] = await files.describe(message.attachments) if files else message.attachments
    return body


def adapter_deliverer(
    channel: Channel,
    client: httpx.AsyncClient,
    config: AdapterDeliveryConfig,
    *,
    instance: str,
    files: AdapterFiles | None = None,
    clock: Clock | None = None,
) -> HttpDeliverer:
    """The deliverer of a registered channel adapter: ``POST <url>/send`` with the channel secret as bearer (and the
    agents' files as ``files`` describes them); ``clock`` reads a ``Retry-After`` date."""
    takes_text = channel.capabilities.get("send_text") is not False
    return HttpDeliverer(
        name=channel.name,
        prefixes=channel.jid_prefixes,
        url=channel.url.rstrip("/") + "/send",
        body=adapter_body if files is None else functools.partial(adapter_body, files=files),
        client=client,
        config=config,
        instance=instance,
        label=f"adapter {channel.name}",
        bearer=config.channel_secret,
        refusal=None if takes_text else f"adapter {channel.name} does not take text (send_text is false)",
        clock=clock,
        uploads=True,
    )


# ---------------------------------------------------------------------------------------------------- daemons
def daemon_body(name: str, find_original: FindOriginal) -> Body:
    """The body a daemon receives: the message its route sent, as stored, and where it came from.

    ``{chat_jid, id, seq, sender, sender_name, content, verb, topic, timestamp, reply_to, reply_to_text,
    reply_to_sender, attachments, is_bot_message, daemon, idempotency_key}``: ``chat_jid`` is the chat the message
    came from, ``id`` and ``seq`` its own, ``timestamp`` its platform send time (ISO 8601, UTC, ``Z``), ``reply_to``
    the id of the message it answers; ``daemon`` is the target's name. The outbox row (``daemon:<name>``) names the
    message by ``forwarded_from`` (its chat) and ``reply_to_id`` (its id); one no longer stored fails the row.
    """

    async def build(row: Message, key: str) -> dict[str, Any]:
        original = await find_original(row)
        if original is None:
            raise DeliveryError(
                f"the message {row.reply_to_id!r} of {row.forwarded_from} sent to daemon {name} is no longer stored",
                transient=False,
            )
        return {
            "chat_jid": original.chat_jid,
            "id": original.id,
            "seq": original.seq,
            "sender": original.sender,
            "sender_name": original.sender_name,
            "content": row.content,
            "verb": original.verb,
            "topic": original.topic,
            "timestamp": _utc(original.timestamp),
            "reply_to": original.reply_to_id,
            "reply_to_text": original.reply_to_text,
            "reply_to_sender": original.reply_to_sender,
            "attachments": original.attachments,
            "is_bot_message": original.is_bot_message,
            "daemon": name,
            "idempotency_key": key,
        }

    return build


def daemon_deliverer(
    name: str,
    url: str,
    client: httpx.AsyncClient,
    config: AdapterDeliveryConfig,
    *,
    instance: str,
    find_original: FindOriginal,
    outbox: str,
    clock: Clock | None = None,
) -> HttpDeliverer:
    """The deliverer of daemon ``name``: ``POST <url>`` of each row in its outbox (the JID ``outbox``), no bearer;
    ``clock`` reads a ``Retry-After`` date."""
    return HttpDeliverer(
        name=outbox,
        prefixes=[outbox],
        exact=True,  # daemon:hook's outbox is not daemon:hook-2's
        url=url,
        body=daemon_body(name, find_original),
        client=client,
        config=config,
        instance=instance,
        label=f"daemon {name}",
        clock=clock,
    )


# ---------------------------------------------------------------------------------------------------- answers
def _platform_id(response: httpx.Response) -> str | None:
    """The ``id`` a receiver answered with (arizuko's ``{"ok": true, "id": …}``), if any."""
    try:
        answer = response.json()
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes: taken, with no id
        return None
    if isinstance(answer, dict):
        value = answer.get("id")
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


def _retry_after(response: httpx.Response, now: dt.datetime) -> float | None:
    """The seconds ``response``'s ``Retry-After`` asks to wait from ``now`` (RFC 9110 §10.2.3: delay-seconds or an
    HTTP date); None when it has none, one that cannot be read, or a time already past."""
    value = response.headers.get("retry-after", "").strip()
    if value.isascii() and value.isdigit():
        seconds = float(value) if len(value) < 10 else 1e9  # longer than the policy waits anyway (max_backoff)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        seconds = (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp() - now.timestamp()
    return seconds if seconds > 0 else None


def _shown_location(response: httpx.Response) -> str:
    """Where a redirect points, as logs and ``delivery_error`` may show it (no user name or password, no secret)."""
    location = response.headers.get("location", "").strip()
    if not location:
        return "without a Location"
    return "to " + redaction.redact(_without_credentials(location))[:_SNIPPET]


def _snippet(response: httpx.Response) -> str:
    # it goes into delivery_error and the logs: a receiver that echoes the credentials it got must not put the
    # channel secret there (SPEC §14). Redacted before the cut, so the cut cannot leave a piece of a secret.
    text = redaction.redact(response.text.strip().replace("\n", " "))
    return text[:_SNIPPET] or response.reason_phrase


def _without_credentials(url: str) -> str:
    """``url`` as logs may show it: without a user name or password."""
    import httpx

    try:
        return str(httpx.URL(url).copy_with(username=None, password=None))
    except (httpx.InvalidURL, TypeError, ValueError):
        return "(an invalid URL)"


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
