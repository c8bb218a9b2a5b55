"""The Telegram adapter process (``gated adapter telegram``): long polling in, ``/send`` out.

Start-up: bind the HTTP port (a port in use is one line, before anything else), check the bot token (``getMe``),
drop any webhook (long polling and a webhook exclude each other), serve ``/send``, register with gated (waiting for
it), then poll.

**Nothing lost, nothing repeated.** python-telegram-bot's ``Updater`` tells Telegram an update is done as soon as it
has fetched it (the next ``getUpdates`` carries the new offset), before anyone handled it, so a crash loses what
was fetched. This loop calls ``getUpdates`` itself and, per update, in order: posts it to gated, retrying while gated
is down (:class:`~kanmon.adapters.gated_client.GatedClient`), and only once gated has stored it persists the offset
past it (:class:`~kanmon.adapters.state.AdapterState`). Telegram keeps an update until a later ``getUpdates`` names
an offset past it, so after a crash or restart the updates not yet stored come again; one stored but whose offset was
not yet saved comes again too, and gated's ingest, idempotent on ``(chat_jid, id)``, stores it once. The saved
offset belongs to the bot (its ``getMe`` id): a token of another bot on the same state directory starts afresh
instead of skipping that bot's updates below the old bot's offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn
from telegram import Bot, Update, User
from telegram.error import Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.request import HTTPXRequest

from kanmon import redaction
from kanmon.adapters.gated_client import GatedClient, MessageRefused
from kanmon.adapters.state import AdapterState
from kanmon.adapters.telegram.chat_action import Typing
from kanmon.adapters.telegram.inbound import ALLOWED_UPDATES, chat_name, to_inbound
from kanmon.adapters.telegram.outbound import TelegramSender, retry_after_seconds
from kanmon.adapters.telegram.server import PREFIX, create_app
from kanmon.errors import InvalidInput
from kanmon.serving import EmbeddedServer
from kanmon.stopping import unless_stopped

__all__ = ["TelegramAdapter", "TelegramConfig"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TelegramConfig:
    """Everything the adapter is told (from kanmon.yaml / ``KANMON_TELEGRAM_*`` / flags, via gated's settings)."""

    token: str = field(repr=False)
    channel_secret: str = field(repr=False)
    gated_url: str  # e.g. http://127.0.0.1:8080
    url: str  # where gated reaches this adapter, e.g. http://127.0.0.1:8081
    state_dir: Path
    name: str = "telegram"
    api_url: str = "https://api.telegram.org"  # the Bot API server (a local one in tests)
    poll_timeout: float = 30.0  # seconds one getUpdates long poll may wait
    typing_limit: float = 120.0  # seconds "typing…" may show for one message; 0: never
    max_inline_wait: float = 5.0  # the longest 429 wait made inside a /send request


class TelegramAdapter:
    """One bot: its poller, its ``/send`` server and its registration with gated."""

    def __init__(self, config: TelegramConfig, listener: socket.socket) -> None:
        redaction.remember(config.token)
        self.config = config
        self.listener = listener
        self.state = AdapterState(config.state_dir)
        self.bot = Bot(
            config.token,
            base_url=f"{config.api_url.rstrip('/')}/bot",
            base_file_url=f"{config.api_url.rstrip('/')}/file/bot",
            request=HTTPXRequest(connection_pool_size=32, read_timeout=30.0, connect_timeout=10.0),
            get_updates_request=HTTPXRequest(read_timeout=10.0, connect_timeout=10.0),
        )
        self.me: User | None = None
        self._named: set[int] = set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Serve until ``stopping`` is set. Raises InvalidInput for a token Telegram refuses, a state directory in
        use, or a registration gated refuses."""
        self.state.open()
        gated = GatedClient(self.config.gated_url, self.config.channel_secret, self._registration(), stopping)
        typing = Typing(self.bot, limit=self.config.typing_limit)
        # fetches the files gated gives by link (its own network: no proxies from the environment)
        files = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0), trust_env=False)
        server: uvicorn.Server | None = None
        try:
            self.me = await self._start_bot()
            if self.state.claim_offset(self.me.id):
                logger.warning(
                    "the saved update offset in %s is not this bot's (@%s): polling starts afresh",
                    self.config.state_dir, self.me.username,
                )  # fmt: skip
            sender = TelegramSender(
                self.bot, self.state, http=files, max_inline_wait=self.config.max_inline_wait, on_sent=typing.stop
            )
            app = create_app(
                bot=self.bot, sender=sender, typing=typing, channel_secret=self.config.channel_secret,
                name=self.config.name,
            )  # fmt: skip
            server = EmbeddedServer(uvicorn.Config(app, log_config=None, lifespan="off", access_log=False))
            serving = asyncio.create_task(server.serve(sockets=[self.listener]), name="telegram-http")
            await gated.register()
            logger.info("Telegram adapter %s polling as @%s", self.config.name, self.me.username)
            await self._poll(gated, typing, stopping)
        finally:
            if server is not None:
                server.should_exit = True
                await serving
            await typing.close()
            await gated.aclose()
            await files.aclose()
            with contextlib.suppress(TelegramError, RuntimeError):
                await self.bot.shutdown()
            self.state.close()

    def _registration(self) -> dict[str, object]:
        return {
            "name": self.config.name,
            "url": self.config.url,
            "jid_prefixes": [PREFIX],
            "capabilities": {"send_text": True, "send_file": True, "typing": True},
        }

    async def _start_bot(self) -> User:
        try:
            await self.bot.initialize()
            await self.bot.delete_webhook(drop_pending_updates=False)
        except (InvalidToken, Forbidden) as exc:
            # PTB's message quotes the token: redacted like every line that could carry it
            raise InvalidInput(f"telegram.bot_token: Telegram refused it ({redaction.redact(str(exc))})") from None
        except NetworkError as exc:
            reason = redaction.redact(str(exc))
            raise InvalidInput(f"telegram.api_url {self.config.api_url}: unreachable ({reason})") from None
        return self.bot.bot

    # ------------------------------------------------------------------------------------------------ polling
    async def _poll(self, gated: GatedClient, typing: Typing, stopping: asyncio.Event) -> None:
        assert self.me is not None
        bot_id = self.me.id
        failures = 0
        while not stopping.is_set():
            try:
                fetched = await unless_stopped(self._fetch(), stopping)
            except RetryAfter as exc:
                await _sleep(retry_after_seconds(exc), stopping)
                continue
            except (InvalidToken, Forbidden) as exc:  # the token was revoked while running
                raise InvalidInput(f"telegram.bot_token: Telegram refused it ({redaction.redact(str(exc))})") from None
            except (NetworkError, Conflict) as exc:
                failures += 1
                logger.warning("getUpdates failed (%s); retrying", exc)
                await _sleep(min(30.0, 0.5 * 2**failures), stopping)
                continue
            failures = 0
            for update in fetched.result() if fetched is not None else ():
                if stopping.is_set():
                    return  # not stored, offset not saved: Telegram sends it again after the restart
                await self._ingest(update, gated, typing)
                await self.state.keep_offset(update.update_id + 1, bot_id)

    async def _fetch(self) -> tuple[Update, ...]:
        return await self.bot.get_updates(
            offset=self.state.offset,
            timeout=int(self.config.poll_timeout),
            allowed_updates=list(ALLOWED_UPDATES),
        )

    async def _ingest(self, update: Update, gated: GatedClient, typing: Typing) -> None:
        """Hand ``update`` to gated and return once it is stored (or refused for good, which is logged)."""
        assert self.me is not None
        body = to_inbound(update, self.me, f"{self.config.url.rstrip('/')}/files")
        if body is None:
            return
        chat = update.effective_chat
        if chat is not None and chat.id not in self._named:
            try:
                await gated.post_chat(
                    {"chat_jid": body["chat_jid"], "name": chat_name(chat), "is_group": body["is_group"]}
                )
            except MessageRefused as exc:  # only the chat's name is lost
                logger.warning("chat %s not named: %s", body["chat_jid"], exc)
            self._named.add(chat.id)
        try:
            await gated.post_message(body)
        except MessageRefused as exc:
            logger.error("update %d skipped: %s", update.update_id, exc)
            return
        addressed = body["verb"] == "mention" or (body["verb"] == "message" and not body["is_group"])
        if chat is not None and addressed:  # an agent will most likely answer: show it working
            typing.start(chat.id, int(body["topic"]) if body["topic"] else None)


async def _sleep(seconds: float, stopping: asyncio.Event) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
