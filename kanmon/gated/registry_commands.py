"""`gated group …` and `gated route …`: registering agent folders and routes."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import click

from kanmon.container import InvalidRunSpec
from kanmon.container.mounts import agent_owner, prepare_group_dir
from kanmon.errors import InvalidInput
from kanmon.folders import validate_folder, validate_jid
from kanmon.gated.app import App
from kanmon.gated.auth_commands import auth_config
from kanmon.gated.completion import group_folders
from kanmon.gated.group_settings import parse_change, settings_options
from kanmon.gated.group_view import describe_group, render_group
from kanmon.gated.output import emit_json, iso, json_option
from kanmon.gateway import IdleQueue, LayerContext, probe_message
from kanmon.gateway.auth import CHECKED_ORIGIN_PREFIX
from kanmon.gateway.channels import STORE_READ_PREFIXES
from kanmon.gateway.explanation import explain_document
from kanmon.router import check_route, check_seq, check_target_known, folder_targets
from kanmon.store import Conflict, Group, NotFound, Route
from kanmon.web.tokens import chat_url, new_token

__all__ = ["group", "route"]

pass_app = click.make_pass_decorator(App)


@click.group()
def group() -> None:
    """Register, list and remove agent groups."""


@group.command("add")
@click.argument("folder")
@click.option("--name", default="", help="Display name.  [default: the folder]")
@click.option("--parent", default=None, help="Parent group folder.")
@click.option("--web", is_flag=True, help="Open its web chat: print a new web token (shown once, stored hashed).")
@settings_options
@pass_app
def group_add(app: App, /, folder: str, name: str, parent: str | None, web: bool, **options: Any) -> None:
    """Register FOLDER (e.g. support, corp/eng) as an agent group, with its agent settings (see `group set`)."""
    validate_folder(folder)  # before anything touches the disk
    container_config = parse_change(options, app.settings).apply({}, app.settings)
    store = app.store(create=True)
    if parent is not None and store.get_group(validate_folder(parent)) is None:
        raise InvalidInput(f"parent group {parent!r} does not exist")
    new = Group(folder=folder, name=name, parent=parent, container_config=container_config)
    problem = _prepare_folder(app, new)  # first: a folder that is a symlink out of the data dir adds no group
    added = store.add_group(new)
    click.echo(f"added group {added.folder} ({app.group_dir(folder)})")
    if problem is not None:
        click.echo(f"warning: {problem}", err=True)
    if web:
        _new_web_token(app, added.folder)


@group.command("set")
@click.argument("folder", shell_complete=group_folders)
@settings_options
@pass_app
def group_set(app: App, /, folder: str, **options: Any) -> None:
    """Change FOLDER's agent settings; they apply from its next run (a run going on keeps its own).

    Options not given stay as they are; --reset SETTING goes back to gated's default. Secrets are named here and
    configured in the secrets: section of kanmon.yaml; their values reach the agent only on its stdin.
    """
    validate_folder(folder)
    change = parse_change(options, app.settings)  # every value checked before the store is opened
    if change.empty:
        raise InvalidInput("nothing to change: give at least one setting (gated group set --help lists them)")
    store = app.store()
    try:
        updated = store.update_group_config(folder, lambda config: change.apply(config, app.settings))
    except NotFound:
        raise InvalidInput(f"no group {folder!r}: add it with `gated group add {folder} …`") from None
    problem = _prepare_folder(app, updated)  # a new user or runtime: the folder becomes the new agent user's
    click.echo(f"updated group {folder}; its next run uses the new settings (`gated group show {folder}`)")
    if problem is not None:
        click.echo(f"warning: {problem}", err=True)


@group.command("show")
@click.argument("folder", shell_complete=group_folders)
@json_option
@pass_app
def group_show(app: App, folder: str, as_json: bool) -> None:
    """Show FOLDER's agent settings, its own and gated's defaults (secrets by name only, never a value)."""
    store = app.store()
    found = store.get_group(validate_folder(folder))
    if found is None:
        raise InvalidInput(f"no group {folder!r}: add it with `gated group add {folder} …`")
    view = describe_group(found, app.settings, web_tokens=len(store.list_web_tokens(folder)))
    if as_json:
        emit_json(view)
        return
    for line in render_group(view, app.settings):
        click.echo(line)


@group.command("web-token")
@click.argument("folder", shell_complete=group_folders)
@click.option("--label", default="", help="Who or what the new link is for (shown by --list).")
@click.option("--replace", is_flag=True, help="Revoke every other token of FOLDER: everyone else is logged out.")
@click.option("--list", "listing", is_flag=True, help="List FOLDER's tokens (id, label, created); never a token.")
@click.option("--revoke", "revoke", type=int, metavar="ID", help="Revoke the token ID (see --list).")
@json_option
@pass_app
def group_web_token(
    app: App, folder: str, label: str, replace: bool, listing: bool, revoke: int | None, as_json: bool
) -> None:
    """Give FOLDER's web chat one more token and print it, once (its other tokens keep working).

    Each token is a link of its own: give a new person or device a new one, with a --label, and --revoke it alone
    later. Only its sha256 is stored.
    """
    if sum((listing, revoke is not None, replace or bool(label))) > 1:
        raise InvalidInput("--list, --revoke and making a token (--label, --replace) go one at a time")
    if as_json and not listing:
        raise InvalidInput("--json goes with --list (a new token is printed once, as text)")
    store = app.store()
    if store.get_group(validate_folder(folder)) is None:
        raise InvalidInput(f"no group {folder!r}: add it with `gated group add {folder} …`")
    if listing:
        tokens = store.list_web_tokens(folder)
        if as_json:
            emit_json([{"id": t.id, "label": t.label, "created_at": iso(t.created_at)} for t in tokens])
            return
        if not tokens:
            click.echo(f"no web tokens for {folder} (`gated group web-token {folder}` makes one)")
        for token in tokens:
            click.echo(f"{token.id}\t{token.label or '-'}\tcreated {token.created_at:%Y-%m-%d %H:%M}Z")
        return
    if revoke is not None:
        if not store.revoke_web_token(folder, revoke):
            raise InvalidInput(f"{folder} has no web token {revoke} (`gated group web-token {folder} --list`)")
        click.echo(f"revoked web token {revoke} of {folder}: its link stops working now")
        return
    _new_web_token(app, folder, label=label, replace=replace)


def _new_web_token(app: App, folder: str, *, label: str = "", replace: bool = False) -> None:
    # only the hash is stored: this is the one time anyone sees the token
    token, token_hash = new_token()
    store = app.store()
    added = (store.set_group_web_token if replace else store.add_web_token)(folder, token_hash, label=label)
    assert added is not None
    # http.public_url, else where the gated on this store serves (`run --http` may name another address than
    # http.listen), else the configured address as this machine reaches it
    served, http = store.served_url(), app.settings.http
    others = "every other token is revoked" if replace else f"`--revoke {added.id}` revokes it alone"
    click.echo(f"web token {added.id} for {folder} (shown once; {others}):")
    click.echo(f"  {token}")
    click.echo(f"chat: {chat_url(http.link_base(served), folder, token)}")
    if not http.public_url and not served and not http.port:
        click.echo("  (http.listen has port 0: PORT is the one gated picks at start and prints)")


def _prepare_folder(app: App, group: Group) -> str | None:
    """Create the group's folder; on docker, give it (and what a restore left in it) to the agent user.

    The agent of a docker group runs as ``runtime.docker.user`` (or the group's ``user``), not as gated: a folder
    made here by root would otherwise be read-only to it. Returns why that could not be done (runs will refuse
    to start, with the same reason, until it is fixed), or None.
    """
    settings = app.settings
    docker = (group.container_config.get("runtime") or settings.runtime.default) == "docker"
    user = str(group.container_config.get("user") or settings.runtime.docker.user)
    owner = agent_owner(user) if docker else None
    try:
        prepare_group_dir(settings.data_dir.absolute(), app.group_dir(group.folder).absolute(), owner)
    except InvalidRunSpec as exc:
        return str(exc)
    return None


@group.command("list")
@json_option
@pass_app
def group_list(app: App, as_json: bool) -> None:
    """List registered groups."""
    store = app.store()
    groups = store.list_groups()
    tokens = Counter(token.group_folder for token in store.list_web_tokens())
    if as_json:
        emit_json([describe_group(found, app.settings, web_tokens=tokens[found.folder]) for found in groups])
        return
    with_web = set(tokens)
    if not groups:
        click.echo("no groups registered (add one with `gated group add FOLDER`)")
    for g in groups:
        runtime = g.container_config.get("runtime", "default")
        click.echo(f"{g.folder}\t{g.name}\truntime={runtime}\tweb={'yes' if g.folder in with_web else 'no'}")


@group.command("rm")
@click.argument("folder", shell_complete=group_folders)
@click.option("--with-routes", is_flag=True, help="Also remove the routes whose target is FOLDER.")
@pass_app
def group_rm(app: App, folder: str, with_routes: bool) -> None:
    """Unregister FOLDER (its files stay on disk); refused while routes point at it, unless --with-routes."""
    validate_folder(folder)
    try:
        removed = app.store().remove_group(folder, routes_to=folder_targets(folder), with_routes=with_routes)
    except Conflict as exc:
        raise InvalidInput(f"{exc}; remove each with `gated route rm ID`, or use --with-routes") from None
    routes = ""
    if removed:
        plural = "s" if len(removed) > 1 else ""
        routes = f" and its route{plural} {', '.join(str(route.id) for route in removed)}"
    click.echo(f"removed group {folder}{routes} (files kept in {app.group_dir(folder)})")


@click.group()
def route() -> None:
    """Add, list and remove routes (walked in (seq, id) order; the first match wins)."""


@route.command("add")
@click.option(
    "--seq", type=int, default=0, show_default=True, help="Position: lower seq is tried first (within ±1000000000)."
)
@click.option(
    "--match", "match", default="", help='Space-separated key=glob terms, e.g. "platform=telegram room=-100*".'
)
@click.option("--target", required=True, help="folder, folder:<folder>, builtin:<name> or daemon:<name>.")
@click.option(
    "--impulse",
    default=None,
    metavar="JSON",
    help='Impulse gate override: threshold, max_hold_ms, weights (verb to weight), e.g. {"threshold": 200}.',
)
@pass_app
def route_add(app: App, seq: int, match: str, target: str, impulse: str | None) -> None:
    """Add a route: refused unless its terms use known keys and its target a registered group or configured daemon."""
    check_seq(seq, name="--seq")  # before the store is opened
    check_route(match, target, impulse, impulse_name=f"--impulse {impulse!r}")
    store = app.store()
    folders = [registered.folder for registered in store.list_groups()]
    check_target_known(target, folders=folders, daemons=app.settings.daemons)
    added = store.add_route(seq=seq, match=match, target=target, impulse_config=impulse)
    click.echo(f"added route {added.id}: seq={added.seq} match={added.match!r} -> {added.target}")


@route.command("list")
@json_option
@pass_app
def route_list(app: App, as_json: bool) -> None:
    """List routes in the order they are tried."""
    routes = app.store().list_routes()
    if as_json:
        emit_json([_route_json(r) for r in routes])
        return
    if not routes:
        click.echo("no routes (add one with `gated route add --target FOLDER`)")
    for r in routes:
        impulse = f"\timpulse={r.impulse_config}" if r.impulse_config else ""
        click.echo(f"{r.id}\tseq={r.seq}\tmatch={r.match!r}\t-> {r.target}{impulse}")


def _route_json(r: Route) -> dict[str, Any]:
    impulse = json.loads(r.impulse_config) if r.impulse_config else None
    return {"id": r.id, "seq": r.seq, "match": r.match, "target": r.target, "impulse": impulse}


@route.command("rm")
@click.argument("route_id", type=int)
@pass_app
def route_rm(app: App, route_id: int) -> None:
    """Remove route ROUTE_ID."""
    app.store().remove_route(route_id)
    click.echo(f"removed route {route_id}")


@route.command("test")
@click.option("--chat-jid", required=True, help="The chat the message comes from, e.g. telegram:-1001234.")
@click.option("--sender", default="", help="The sender, e.g. telegram:42.")
@click.option("--verb", default="message", show_default=True, help="The event type: message, react, typing, …")
@click.option("--content", default="", help="The message text (sticky, command and prefix layers look at it).")
@click.option("--topic", default="", help="The message's own topic (a thread or web conversation).")
@json_option
@pass_app
def route_test(app: App, chat_jid: str, sender: str, verb: str, content: str, topic: str, as_json: bool) -> None:
    """Show which layer and which route would take a message, and why (changes nothing)."""
    validate_jid(chat_jid)
    auth = auth_config(app.settings)
    ctx = LayerContext(app.store(), IdleQueue(), dry_run=True, impulse=app.settings.impulse.config(), auth=auth)
    # a platform chat's message comes through an adapter, so sender authorisation applies to it as in the loop
    origin = "web" if chat_jid.startswith(STORE_READ_PREFIXES) else f"{CHECKED_ORIGIN_PREFIX}probe"
    message = probe_message(chat_jid, content, sender=sender, verb=verb, topic=topic, origin=origin)
    document = explain_document(message, ctx)
    if as_json:
        emit_json(document)
        return
    for line in document["lines"]:
        click.echo(line)
