"""`gated adapter …`: channel adapters, each a process of its own beside gated (``gated adapter telegram|matrix``).

An adapter reads the same configuration as gated (kanmon.yaml, ``KANMON_*``, flags): its own section
(``telegram.*``, ``matrix.*``), ``http.channel_secret`` to register and to check gated's deliveries, and
``http.listen`` to find gated unless told otherwise. Its platform's library is an extra (``pip install
'kanmon[telegram]'``, ``'kanmon[matrix]'``), imported only when the command runs; without it the command says so in
one line.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Any, Literal

import click

from kanmon.errors import InvalidInput
from kanmon.gated.app import App
from kanmon.gated.logs import configure_logging
from kanmon.gated.settings import Settings
from kanmon.serving import listen

__all__ = ["adapter"]

pass_app = click.make_pass_decorator(App)
QUIET_LOGGERS = ("nio", "httpx", "aiohttp")


@click.group()
def adapter() -> None:
    """Channel adapters: processes that bridge a chat platform to gated over HTTP."""


@adapter.command("telegram")
@click.option("--gated", "gated_url", metavar="URL", default=None, help="gated's URL.  [default: http://<http.listen>]")
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None, help="Log line format.")
@click.option(
    "--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False), default=None
)
@pass_app
def telegram(app: App, gated_url: str | None, log_format: str | None, log_level: str | None) -> None:
    """Bridge a Telegram bot (telegram.bot_token) to gated: long polling in, gated's replies out.

    Registers with gated as telegram.name for the JIDs telegram:<chat id>, serves gated's deliveries on
    telegram.listen, and keeps its update offset in telegram.state_dir. SIGINT/SIGTERM stop it; an update not yet
    stored in gated comes again on the next start.
    """
    app.overrides["telegram.gated_url"] = gated_url
    settings = app.settings
    if not settings.telegram.bot_token:
        raise InvalidInput(
            "telegram.bot_token is not set: put the bot's token in kanmon.yaml or KANMON_TELEGRAM_BOT_TOKEN"
        )
    if not settings.http.channel_secret:
        raise InvalidInput("http.channel_secret is not set: the adapter needs it to register with gated")
    try:
        from kanmon.adapters.telegram.adapter import TelegramAdapter, TelegramConfig
    except ImportError as exc:
        raise InvalidInput(f"gated adapter telegram needs {exc.name}: pip install 'kanmon[telegram]'") from None
    _logging(settings, log_level, log_format)
    section = settings.telegram
    listener = listen(section.listen)
    config = TelegramConfig(
        token=section.bot_token,
        channel_secret=settings.http.channel_secret,
        gated_url=section.gated_url or f"http://{_local(settings.http.listen)}",
        url=section.url or f"http://{_local(section.listen)}",
        state_dir=Path(section.state_dir) if section.state_dir else settings.data_dir / "adapters" / section.name,
        name=section.name,
        api_url=section.api_url,
        poll_timeout=section.poll_timeout,
        typing_limit=section.typing_limit,
    )
    try:
        asyncio.run(_serve(TelegramAdapter(config, listener)))
    finally:
        listener.close()


async def _serve(bridge: object) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await bridge.run(stopping)  # type: ignore[attr-defined]
    logging.getLogger(__name__).info("adapter stopped")


def _logging(settings: Settings, level: str | None, fmt: str | None) -> None:
    chosen = level or settings.log.level
    configure_logging(
        chosen, "json" if (fmt or settings.log.format) == "json" else "text", secrets=settings.secret_values()
    )
    if chosen.upper() != "DEBUG":  # one line per Bot API request otherwise
        logging.getLogger("httpx").setLevel(logging.WARNING)


def _local(address: str) -> str:
    """``HOST:PORT`` as a client on this machine reaches it (a wildcard address becomes the loopback one)."""
    host, _, port = address.rpartition(":")
    if host in ("0.0.0.0", "[::]", "::", ""):  # noqa: S104 - recognising the wildcard, not binding it
        host = "127.0.0.1"
    return f"{host}:{port}"


@adapter.command("matrix")
@click.option(
    "--gated",
    "gated_url",
    metavar="URL",
    default=None,
    help="gated's HTTP surface.  [default: matrix.gated_url, else http://<http.listen>]",
)
@click.option("--listen", metavar="HOST:PORT", default=None, help="Serve /send here.  [default: matrix.listen]")
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None, help="Log line format.")
@click.option(
    "--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False), default=None
)
@pass_app
def matrix(app: App, gated_url: str | None, listen: str | None, log_format: Any, log_level: str | None) -> None:
    """Connect a Matrix bot account to gated: rooms become chats, threads topics (needs kanmon[matrix])."""
    try:
        from kanmon.adapters.matrix.config import MatrixConfig
        from kanmon.adapters.matrix.run import bind, serve
    except ImportError as exc:
        raise InvalidInput(f"gated adapter matrix needs {exc.name}: pip install 'kanmon[matrix]'") from None
    settings = app.settings
    config = MatrixConfig.from_settings(settings, gated_url=gated_url, listen=listen)
    sock = bind(config)
    try:
        fmt: Literal["text", "json"] = "json" if (log_format or settings.log.format) == "json" else "text"
        configure_logging(log_level or settings.log.level, fmt, secrets=settings.secret_values())
        if logging.getLogger().level > logging.DEBUG:  # a line per request and per room event is DEBUG's business
            for name in QUIET_LOGGERS:
                logging.getLogger(name).setLevel(logging.WARNING)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    asyncio.run(serve(config, sock))
