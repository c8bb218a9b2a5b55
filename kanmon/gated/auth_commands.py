"""`gated allow …` and `gated pairing …`: the sender allowlist and DM pairing (issue 16 item 1) from the terminal.

The same functions as the chat command ``/pair`` (:mod:`kanmon.gateway.pairing`). They write to the store; a running
gated picks an allowlist change up at its next tick (the configuration version moves).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import click

from kanmon.errors import InvalidInput
from kanmon.folders import is_platform
from kanmon.gated.app import App
from kanmon.gated.completion import group_option
from kanmon.gated.output import emit_json, iso, json_option
from kanmon.gated.settings import Settings
from kanmon.gateway import pairing
from kanmon.gateway.auth import AuthConfig, Mode
from kanmon.router.glob import is_valid_glob
from kanmon.store import AllowEntry, PairingCode, Store

__all__ = ["allow_group", "auth_config", "pairing_group", "refused_json", "show_refused"]

pass_app = click.make_pass_decorator(App)

_BY = "cli"


def auth_config(settings: Settings) -> AuthConfig:
    """The gateway's :class:`AuthConfig` from the ``auth.*`` keys."""
    auth = settings.auth
    return AuthConfig(
        mode=cast(Mode, auth.mode),
        platforms={name: cast(Mode, mode) for name, mode in auth.platforms.items()},
        pairing=auth.pairing,
        pairing_ttl=auth.pairing_ttl,
        pairing_window=auth.pairing_window,
        pairing_max_pending=auth.pairing_max_pending,
        operators=auth.operators,
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@click.group("allow")
def allow_group() -> None:
    """The sender allowlist (used where auth.mode or auth.platforms says allowlist)."""


@allow_group.command("add")
@click.argument("pattern")
@click.option("--platform", default="", help="Only on this platform (a JID prefix such as telegram); default: all.")
@group_option("Only in chats of this group; default: all.", default="")
@click.option("--note", default="", help="Why (shown by allow list).")
@pass_app
def allow_add(app: App, pattern: str, platform: str, folder: str, note: str) -> None:
    """Allow senders matching PATTERN: a sender id (telegram:123) or a glob (telegram:*, Go path.Match rules)."""
    if not pattern.strip() or not is_valid_glob(pattern):
        raise InvalidInput(f"not a sender id or glob: {pattern!r}")
    if platform and not is_platform(platform.strip().lower()):
        raise InvalidInput(f"--platform is a JID prefix without ':', e.g. telegram; got {platform!r}")
    platform = platform.strip().lower()  # as a JID's platform part is, and as auth.platforms folds it
    store = app.store()
    if folder and store.get_group(folder) is None:
        raise InvalidInput(f"no group {folder!r}")
    entry, created = store.add_allow(
        pattern, platform=platform, folder=folder, note=note or f"added by {_BY}", now=_now()
    )
    click.echo(f"{'added' if created else 'already there'}: {_describe(entry)}")


@allow_group.command("rm")
@click.argument("entry_id", type=int)
@pass_app
def allow_rm(app: App, entry_id: int) -> None:
    """Remove allowlist entry ENTRY_ID (as allow list shows it)."""
    entry = app.store().remove_allow(entry_id)
    click.echo(f"removed: {_describe(entry)}")


@allow_group.command("list")
@json_option
@pass_app
def allow_list(app: App, as_json: bool) -> None:
    """List the allowlist: id, platform, group, pattern, note."""
    config = auth_config(app.settings)
    if as_json:
        emit_json([_allow_json(entry) for entry in app.store().list_allow()])
        return
    modes = ", ".join(f"{name}={mode}" for name, mode in config.platforms.items())
    click.echo(f"auth.mode: {config.mode}" + (f" ({modes})" if modes else ""))
    entries = app.store().list_allow()
    if not entries:
        click.echo("no allowlist entries")
    for entry in entries:
        click.echo(_describe(entry))


def _allow_json(entry: AllowEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "pattern": entry.pattern,
        "platform": entry.platform or None,
        "group": entry.folder or None,
        "note": entry.note,
        "added_at": iso(entry.added_at),
    }


def _describe(entry: AllowEntry) -> str:
    platform = entry.platform or "any platform"
    folder = entry.folder or "every group"
    return f"{entry.id}\t{entry.pattern}\t{platform}\t{folder}\t{entry.note}"


@click.group("pairing")
def pairing_group() -> None:
    """DM pairing codes: strangers in direct chats asking to be allowed."""


@pairing_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also decided and expired requests.")
@json_option
@pass_app
def pairing_list(app: App, show_all: bool, as_json: bool) -> None:
    """List pending pairing requests (newest first): id, sender, chat, expiry. Codes are never stored or shown."""
    now = _now()
    codes = app.store().pairing_codes(live_at=None if show_all else now)
    if as_json:
        emit_json([_pairing_json(code, now) for code in codes])
        return
    if not codes:
        click.echo("no pending pairing requests")
    for code in codes:
        state = _state(code, now)
        who = f"{code.sender_name} ({code.sender})" if code.sender_name else code.sender
        click.echo(f"{code.id}\t{state}\t{who}\t{code.chat_jid}\texpires {code.expires_at:%Y-%m-%d %H:%M} UTC")


def _state(code: PairingCode, now: dt.datetime) -> str:
    return code.status if code.status != "pending" or code.expires_at > now else "expired"


def _pairing_json(code: PairingCode, now: dt.datetime) -> dict[str, Any]:
    return {
        "id": code.id,
        "status": _state(code, now),
        "platform": code.platform,
        "sender": code.sender,
        "sender_name": code.sender_name,
        "chat_jid": code.chat_jid,
        "created_at": iso(code.created_at),
        "expires_at": iso(code.expires_at),
        "decided_at": iso(code.decided_at),
        "decided_by": code.decided_by,
        "group": code.folder or None,
    }


@pairing_group.command("approve")
@click.argument("code")
@group_option("Allow the sender in this group only.", default="")
@pass_app
def pairing_approve(app: App, code: str, folder: str) -> None:
    """Approve pairing code CODE: its sender is allowed on its platform (in every group, or only in FOLDER)."""
    config = auth_config(app.settings)
    request, entry = pairing.approve(app.store(), code, by=_BY, now=_now(), folder=folder, config=config)
    click.echo(f"approved request {request.id}: {request.sender} allowed (allowlist entry {entry.id})")


@pairing_group.command("deny")
@click.argument("code")
@pass_app
def pairing_deny(app: App, code: str) -> None:
    """Deny pairing code CODE (or the request id pairing list shows); its sender stays refused."""
    request = pairing.deny(app.store(), code, by=_BY, now=_now(), config=auth_config(app.settings))
    click.echo(f"denied request {request.id} from {request.sender}")


def refused_json(store: Store, now: dt.datetime, limit: int = 5) -> dict[str, Any]:
    """``gated status --json``'s ``refused``: totals, pending pairing codes, the senders refused most recently."""
    refused, senders, messages = store.refused_senders(limit)
    return {
        "senders": senders,
        "messages": messages,
        "pending_pairing_codes": len(store.pairing_codes(live_at=now)),
        "latest": [
            {
                "chat_jid": sender.chat_jid,
                "sender": sender.sender,
                "sender_name": sender.sender_name,
                "count": sender.count,
                "last_seq": sender.last_seq,
                "last_at": iso(sender.last_at),
            }
            for sender in refused
        ],
    }


def show_refused(store: Store, now: dt.datetime, limit: int = 5) -> None:
    """``gated status``'s lines on sender authorisation: refused senders (most recent first) and live pairing codes."""
    refused, senders, messages = store.refused_senders(limit)
    pending = len(store.pairing_codes(live_at=now))
    click.echo(f"refused senders: {senders} ({messages} messages)  pending pairing codes: {pending}")
    for sender in refused:
        name = f" ({sender.sender_name})" if sender.sender_name else ""
        click.echo(
            f"  {sender.sender}{name} in {sender.chat_jid}: {sender.count} refused, last seq {sender.last_seq}"
            f" at {sender.last_at:%Y-%m-%d %H:%M} UTC"
        )
    if senders > len(refused):
        click.echo(f"  … and {senders - len(refused)} more")
