"""`gated apikey add|list|rm`: the keys of the OpenAI-compatible API (:mod:`kanmon.web.openai_api`).

A key is printed once, when it is made; the store keeps only its sha256. Its id (the 8 hex digits after ``kmk_``)
names it in ``list`` and ``rm``.
"""

from __future__ import annotations

import click

from kanmon.errors import InvalidInput
from kanmon.gated.app import App
from kanmon.gated.completion import group_option
from kanmon.gated.output import emit_json, iso, json_option
from kanmon.store import Conflict
from kanmon.web.tokens import new_api_key

__all__ = ["apikey"]

pass_app = click.make_pass_decorator(App)

_TRIES = 5  # a fresh id colliding with a stored one is rare; a few tries make it vanish


@click.group()
def apikey() -> None:
    """API keys of the OpenAI-compatible API (/v1/chat/completions)."""


@apikey.command("add")
@group_option("A group it may use (repeat).", dest="groups", multiple=True, required=True)
@click.option("--name", default="", help="A note on whose key it is (shown by list, and as the sender's name).")
@pass_app
def apikey_add(app: App, groups: tuple[str, ...], name: str) -> None:
    """Make a key that may use each --group as a model, and print it (once: only its hash is stored)."""
    store = app.store()
    for _ in range(_TRIES):
        issued = new_api_key()
        try:
            added = store.add_api_key(issued.key_id, issued.key_hash, groups, name=name)
        except Conflict:
            continue
        click.echo(f"api key {added.id} for {', '.join(added.groups)} (shown once; only its hash is stored):")
        click.echo(f"  {issued.key}")
        return
    raise InvalidInput(f"could not find a free key id in {_TRIES} tries")  # pragma: no cover - 1 in 2**32 each


@apikey.command("list")
@json_option
@pass_app
def apikey_list(app: App, as_json: bool) -> None:
    """List the keys: id, groups, name and when it was made (never the key)."""
    keys = app.store().list_api_keys()
    if as_json:
        emit_json(
            [{"id": k.id, "groups": list(k.groups), "name": k.name, "created_at": iso(k.created_at)} for k in keys]
        )
        return
    if not keys:
        click.echo("no API keys (make one with `gated apikey add --group FOLDER`)")
    for key in keys:
        groups = ",".join(key.groups) or "(no groups left)"
        click.echo(f"{key.id}\t{groups}\t{key.name}\t{key.created_at.isoformat(timespec='seconds')}")


@apikey.command("rm")
@click.argument("key_id")
@pass_app
def apikey_rm(app: App, key_id: str) -> None:
    """Delete the key KEY_ID (its 8 hex digits): it stops working at once."""
    if not app.store().remove_api_key(key_id):
        raise InvalidInput(f"no API key {key_id!r} (`gated apikey list` shows them)")
    click.echo(f"removed api key {key_id}")
