"""``gated migrate``, ``gated config show`` and ``gated send``: the schema, the configuration, a message by hand."""

from __future__ import annotations

import click

from kanmon.errors import InvalidInput
from kanmon.folders import split_jid, validate_jid, validate_topic
from kanmon.gated.app import App
from kanmon.gated.config import render_config
from kanmon.gated.output import emit_json, json_option
from kanmon.gateway.owner import DIRECT_PLATFORMS
from kanmon.message_ids import derived_id_problem
from kanmon.store import NewMessage, head_revision

__all__ = ["config", "migrate", "send"]

pass_app = click.make_pass_decorator(App)


@click.command()
@pass_app
def migrate(app: App) -> None:
    """Create or upgrade the store's schema (a no-op when it is current)."""
    app.store(migrate=True, create=True)
    click.echo(f"store {app.describe_store()} is at schema revision {head_revision()}")


@click.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("show")
@json_option
@pass_app
def config_show(app: App, as_json: bool) -> None:
    """Print the effective configuration, where each value comes from, and what it does (secrets masked)."""
    if as_json:
        rows = app.settings.describe()
        emit_json([{"key": key, "value": value, "source": source, "doc": doc} for key, value, source, doc in rows])
        return
    click.echo(render_config(app.settings))


@click.command()
@click.argument("jid")
@click.argument("text")
@click.option("--sender", default="cli", show_default=True, help="Sender id of the message.")
@click.option("--verb", default="message", show_default=True, help="Event type (message, mention, react, …).")
@click.option("--topic", default="", help="Topic (sub-conversation) of the message.")
@click.option("--id", "message_id", default=None, help="Message id; re-sending the same id is a no-op.")
@pass_app
def send(app: App, jid: str, text: str, sender: str, verb: str, topic: str, message_id: str | None) -> None:
    """Put a message into the store as if JID had sent TEXT."""
    validate_jid(jid)
    validate_topic(jid, topic)
    problem = derived_id_problem(message_id) if message_id else None
    if problem is not None:
        raise InvalidInput(f"--id: {problem}")
    if verb == "message" and not text.strip():
        raise InvalidInput("TEXT is empty: a message needs some text")
    platform, room = split_jid(jid)
    if platform in DIRECT_PLATFORMS:  # a group's own chat: the group must exist, or the row is only ever skipped
        store = app.store()
        if store.get_group(room) is None:
            raise InvalidInput(f"no group {room!r}: {jid} is the chat of group {room} (`gated group list`)")
    else:
        store = app.store(create=True)
    result = store.put_message(
        NewMessage(chat_jid=jid, content=text, sender=sender, verb=verb, topic=topic, id=message_id, origin="cli")
    )
    state = "stored" if result.created else "already stored"
    click.echo(f"{state}: seq {result.message.seq} id {result.message.id} in {jid}")
