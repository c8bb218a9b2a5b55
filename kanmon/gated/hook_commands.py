"""``gated hooks list``: the lifecycle hook plugins ``gated run`` would load (issue 16 item 6), and what each does.

Loading a plugin imports it: this runs the same trusted local code ``gated run`` would, and fails the same way (a
module of ``hooks.modules`` that cannot be loaded is one line, exit 2).
"""

from __future__ import annotations

import click

from kanmon.gated.app import App
from kanmon.gated.output import emit_json, json_option
from kanmon.gateway.hooks import Hooks

__all__ = ["hooks_group"]

pass_app = click.make_pass_decorator(App)


@click.group("hooks")
def hooks_group() -> None:
    """Lifecycle hook plugins (hooks.modules and kanmon.hooks entry points)."""


@hooks_group.command("list")
@json_option
@pass_app
def hooks_list(app: App, as_json: bool) -> None:
    """The plugins gated run loads: name, where from, the hooks each implements (or why it is left out)."""
    config = app.settings.hooks.config()
    hooks = Hooks.load(config)
    try:
        if as_json:
            plugins = [
                {"name": p.name, "source": p.source, "hooks": list(p.hooks), "error": p.error} for p in hooks.plugins
            ]
            emit_json({"timeout": config.timeout, "entry_points": config.entry_points, "plugins": plugins})
            return
        click.echo(f"hooks.timeout: {config.timeout:g}s; entry points: {'on' if config.entry_points else 'off'}")
        if not hooks.plugins:
            click.echo("no hook plugins")
        for plugin in hooks.plugins:
            what = f"left out: {plugin.error}" if plugin.error else ", ".join(plugin.hooks) or "no hooks"
            click.echo(f"{plugin.name}\t{plugin.source}\t{what}")
    finally:
        hooks.close()
