"""``gated adapter …``: channel adapters shipped with kanmon, each a process of its own (SPEC §11).

Each subcommand imports its adapter only when run, so gated works without the adapters' extras installed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

import click

from kanmon.errors import InvalidInput, KanmonError
from kanmon.gated.app import App
from kanmon.gated.logs import configure_logging

__all__ = ["adapter"]

pass_app = click.make_pass_decorator(App)
QUIET_LOGGERS = ("nio", "httpx", "aiohttp")


@click.group()
def adapter() -> None:
    """Channel adapters: separate processes that connect a chat platform to gated over HTTP."""


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
        raise KanmonError(f"the Matrix adapter needs matrix-nio: pip install 'kanmon[matrix]' ({exc})") from None
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
