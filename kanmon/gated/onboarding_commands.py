"""`gated onboarding …`: the onboarding list (SPEC §11) from the terminal, for operators without a root group's chat.

The same functions as the chat commands ``/approve`` and ``/reject`` (:mod:`kanmon.gateway.onboarding`), so the two
cannot drift apart. They write to the store; a running gated picks the re-posted message up within
``watch_interval`` (0.25 s) and the route with it (or at its next poll when nothing is re-posted).
"""

from __future__ import annotations

from typing import Any

import click

from kanmon.gated.app import App
from kanmon.gated.completion import group_folders
from kanmon.gated.output import emit_json, json_option
from kanmon.gateway import onboarding
from kanmon.gateway.onboarding import Entry

__all__ = ["onboarding_group"]

pass_app = click.make_pass_decorator(App)

_BY = "cli"


@click.group("onboarding")
def onboarding_group() -> None:
    """Chats nobody owns, waiting for approval (needs onboarding.enabled: true)."""


@onboarding_group.command("list")
@json_option
@pass_app
def onboarding_list(app: App, as_json: bool) -> None:
    """List pending chats (oldest first), then approved and rejected ones."""
    found = onboarding.entries(app.store())
    if as_json:
        emit_json([_entry_json(entry) for entry in found])
        return
    if not found:
        enabled = "on" if app.settings.gateway.onboarding else "off (set onboarding.enabled: true)"
        click.echo(f"no chats on the onboarding list (onboarding is {enabled})")
        return
    for entry in found:
        click.echo(_describe(entry))


def _entry_json(entry: Entry) -> dict[str, Any]:
    waiting = entry.waiting
    return {
        "chat_jid": entry.jid,
        "state": entry.state,
        "group": entry.folder,
        "waited": None
        if waiting is None
        else {
            "count": waiting.count,
            "first_sender": waiting.first_sender,
            "first_sender_name": waiting.first_sender_name,
            "first_at": waiting.first_at,
            "last_at": waiting.last_at,
        },
    }


def _describe(entry: Entry) -> str:
    decision = {"pending": "pending", "approved": f"approved -> {entry.folder}", "rejected": "rejected"}[entry.state]
    waiting = entry.waiting
    if waiting is None:
        return f"{entry.jid}\t{decision}"
    who = f"{waiting.first_sender_name} ({waiting.first_sender})" if waiting.first_sender_name else waiting.first_sender
    plural = "" if waiting.count == 1 else "s"
    return (
        f"{entry.jid}\t{decision}\t{waiting.count} message{plural} waited\tfirst from {who or '?'} at "
        f"{waiting.first_at}\tlast at {waiting.last_at}"
    )


@onboarding_group.command("approve")
@click.argument("jid")
@click.argument("folder", shell_complete=group_folders)
@pass_app
def onboarding_approve(app: App, jid: str, folder: str) -> None:
    """Route chat JID to group FOLDER and answer its newest waiting message."""
    approval = onboarding.approve(app.store(), jid, folder, by=_BY)
    if not approval.changed:
        click.echo(f"{jid} was already approved -> {folder}; nothing changed")
        return
    line = f"approved {jid} -> {folder} (route {approval.route_id})"
    if approval.reposted is not None:
        line += f"; its newest waiting message (of {approval.waited}) goes to {folder} as seq {approval.reposted.seq}"
    else:
        line += "; no message was waiting"
    click.echo(line)


@onboarding_group.command("reject")
@click.argument("jid")
@pass_app
def onboarding_reject(app: App, jid: str) -> None:
    """Reject chat JID: its messages stay skipped and it is not listed as pending again."""
    onboarding.reject(app.store(), jid, by=_BY)
    click.echo(f"rejected {jid}; its messages will be skipped")
