"""``gated run``, ``gated demo`` and ``gated chat``: the daemon, and talking to it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import click

from kanmon.container import echo_agent
from kanmon.errors import InvalidInput
from kanmon.folders import validate_folder, validate_topic
from kanmon.gated.app import App
from kanmon.gated.completion import group_folders
from kanmon.gated.daemon import Daemon
from kanmon.gated.logs import configure_logging
from kanmon.gated.terminal import Prompt, TerminalChat, read_lines
from kanmon.serving import listen
from kanmon.store import Group, Store
from kanmon.store.aio import AsyncStore
from kanmon.web.tokens import chat_url, new_token

__all__ = ["chat", "demo", "run"]

pass_app = click.make_pass_decorator(App)

DEMO_FOLDER = "demo"
MAX_PORT = 65535


def _log_options(fn: Any) -> Any:
    fn = click.option("--log-format", type=click.Choice(["text", "json"]), default=None, help="Log line format.")(fn)
    return click.option(
        "--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False), default=None
    )(fn)


def _http_option(fn: Any) -> Any:
    return click.option(
        "--http",
        "http",
        metavar="HOST:PORT",
        default=None,
        help="Serve HTTP here (health, metrics).  [default: http.listen, 127.0.0.1:8080]",
    )(click.option("--no-http", is_flag=True, help="Serve no HTTP at all.")(fn))


def _http_address(app: App, http: str | None, no_http: bool) -> str | None:
    if no_http and http is not None:
        raise InvalidInput("--http and --no-http: give one or the other")
    if no_http:
        return None
    address = http or app.settings.http.listen
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InvalidInput(f"--http {address!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    if int(port) > MAX_PORT:
        raise InvalidInput(f"--http {address!r}: port {int(port)} is out of range (0-{MAX_PORT}; 0 picks a free one)")
    return address


def _setup_logging(app: App, level: str | None, fmt: str | None) -> None:
    settings = app.settings.log
    json_lines = (fmt or settings.format) == "json"
    fmt_: Literal["text", "json"] = "json" if json_lines else "text"
    configure_logging(level or settings.level, fmt_, secrets=app.settings.secret_values(), access=settings.access)


def _instance_option(fn: Any) -> Any:
    return click.option(
        "--instance",
        metavar="NAME",
        default=None,
        help="Name on this gated's containers and lock.  [default: instance, or derived from the data dir]",
    )(fn)


@contextlib.contextmanager
def _listening(address: str | None) -> Iterator[socket.socket | None]:
    """The HTTP socket, bound before the store is touched (a port in use changes nothing); None without HTTP."""
    if address is None:
        yield None
        return
    listener = listen(address, hint="another address: --http HOST:PORT, or http.listen")
    try:
        yield listener
    finally:
        listener.close()


@click.command()
@_http_option
@click.option("--no-migrate", is_flag=True, help="Do not upgrade the schema on start.")
@click.option(
    "--standby",
    is_flag=True,
    help="If another gated holds the store, wait and take over when it stops (instead of exiting with status 3).",
)
@_instance_option
@_log_options
@pass_app
def run(
    app: App,
    http: str | None,
    no_http: bool,
    no_migrate: bool,
    standby: bool,
    instance: str | None,
    log_format: str | None,
    log_level: str | None,
) -> None:
    """Run the gateway: poll the store, run agents, deliver their replies (SIGINT/SIGTERM stop it cleanly).

    One gated per store: a second one on the same store says who holds it and exits with status 3; with --standby it
    waits instead and takes over within seconds of the holder's end. While the database is unreachable gated waits
    for it (/readyz says why).
    """
    app.overrides["instance"] = instance
    _setup_logging(app, log_level, log_format)  # first: with --log-format json even a bad --http is a JSON line
    address = _http_address(app, http, no_http)
    with _listening(address) as listener:
        store = app.open_store(create=not no_migrate)  # --no-migrate: a missing store is not made, nor left empty
        prepare = lambda: app.store(migrate=not no_migrate, create=not no_migrate)  # noqa: E731 - under the lock, later
        asyncio.run(Daemon(app.settings, store, listener=listener, standby=standby, prepare=prepare).run())


@click.command()
@_http_option
@click.option("--folder", default=DEMO_FOLDER, show_default=True, help="Folder of the demo group.")
@_instance_option
@_log_options
@pass_app
def demo(
    app: App,
    http: str | None,
    no_http: bool,
    folder: str,
    instance: str | None,
    log_format: str | None,
    log_level: str | None,
) -> None:
    """Run a demo: a group answered by the echo agent on the process runtime, and a chat with it right here.

    Type a line and the agent answers it; Ctrl-D ends the chat and keeps the gateway running, Ctrl-C stops it.
    """
    app.overrides["instance"] = instance
    validate_folder(folder)  # before anything is created
    address = _http_address(app, http, no_http)
    _setup_logging(app, log_level or "WARNING", log_format)
    web_token: list[str] = []
    agent: list[str] = ["echo agent"]

    def prepare() -> None:
        store = app.store(migrate=None, create=True)
        if not _ensure_demo_group(store, folder):  # a group of the operator's: its own agent answers, not the echo
            agent[0] = "an existing group: its own agent"
        # Tokens are stored hashed, so the demo's cannot be shown again: each demo with HTTP makes a new one.
        if address is not None:
            web_token.append(_new_demo_web_token(store, folder))

    def ready(daemon: Daemon) -> None:
        click.echo(f"kanmon demo: group {folder!r} ({agent[0]}), data in {app.settings.data_dir}")
        if daemon.http_url:
            click.echo(f"health: {daemon.http_url}/healthz   metrics: {daemon.http_url}/metrics")
            if web_token:
                link = chat_url(app.settings.http.link_base(daemon.http_url), folder, web_token[0])
                click.echo(f"web chat: {link}")
        click.echo("type a message and press Enter; Ctrl-D ends the chat (gated keeps serving), Ctrl-C stops gated")

    with _listening(address) as listener:
        daemon = Daemon(app.settings, app.open_store(create=True), listener=listener, on_ready=ready, prepare=prepare)
        asyncio.run(_demo(daemon, folder))


async def _demo(daemon: Daemon, folder: str) -> None:
    serving = asyncio.create_task(daemon.run())
    started = asyncio.create_task(daemon.gateway.started.wait())
    await asyncio.wait([started, serving], return_when=asyncio.FIRST_COMPLETED)  # the store is ready from here
    started.cancel()
    if serving.done():
        await serving  # it could not start: say why
        return
    # Lines on standard input (typed, or piped in) go to the demo group; at their end the gateway keeps serving.
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    chat = TerminalChat(daemon.gateway.db, folder, put=daemon.gateway.put_message)
    await read_lines(sys.stdin, lines)
    talking = asyncio.create_task(chat.run(lines))
    await asyncio.wait([serving, talking], return_when=asyncio.FIRST_COMPLETED)
    if talking.done() and not serving.done():
        where = f" ({daemon.http_url})" if daemon.http_url else ""
        click.echo(f"end of input: the terminal chat is over; gated keeps serving{where}. Ctrl-C stops it.")
    talking.cancel()
    await serving


def _ensure_demo_group(store: Store, folder: str) -> bool:
    """Make the demo group ``folder`` unless it exists; True when it is the demo's (made now or by an earlier demo)."""
    found = store.get_group(folder)
    if found is not None:
        program = (found.container_config.get("command") or [""])[-1]
        return Path(str(program)).name == Path(echo_agent.__file__).name
    # `gated agent echo`'s program, run as the standard-library-only file it is: the agent starts in milliseconds
    # instead of importing all of gated first.
    command = [sys.executable, "-I", echo_agent.__file__]
    store.add_group(Group(folder=folder, name="Demo", container_config={"runtime": "process", "command": command}))
    return True


def _new_demo_web_token(store: Store, folder: str) -> str:
    token, token_hash = new_token()
    store.renew_web_token(folder, token_hash, label="demo")  # the demo's link, new at each start; others stay
    return token


@click.command()
@click.argument("folder", shell_complete=group_folders)
@click.option("--topic", default="terminal", show_default=True, help="Conversation (web topic) to speak in.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds to wait for replies after input ends.",
)
@pass_app
def chat(app: App, folder: str, topic: str, timeout: float) -> None:
    """Talk to group FOLDER from the terminal; a running `gated run` (or `gated demo`) on this store answers."""
    validate_topic(f"web:{folder}", topic)
    store = app.store()
    if store.get_group(folder) is None:
        raise InvalidInput(f"no group {folder!r}: add it with `gated group add {folder} …`")
    if sys.stdin.isatty():
        click.echo(
            f"talking to {folder} as web:{folder} #{topic}; Ctrl-D ends the chat once the replies still due are in"
            f" (at most {timeout:g}s)",
            err=True,
        )
    missing = asyncio.run(_chat(store, folder, topic, reply_timeout=timeout))
    if missing:
        raise click.exceptions.Exit(1)


async def _chat(store: Store, folder: str, topic: str, reply_timeout: float) -> int:
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    prompt = Prompt("you> ") if sys.stdin.isatty() else None  # piped input: no prompt, and only replies on stdout
    await read_lines(sys.stdin, lines, prompt)
    chat = TerminalChat(AsyncStore(store), folder, topic=topic, reply_timeout=reply_timeout, prompt=prompt)
    return await chat.run(lines)
