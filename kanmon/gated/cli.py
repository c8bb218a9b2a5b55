"""The `gated` command line (SPEC §13): thin click commands over the store and the daemon wiring.

Errors a user can cause print one line and exit 2 having changed nothing; no command prints a traceback for them.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from kanmon.errors import InvalidInput, KanmonError
from kanmon.gated.adapter_commands import adapter
from kanmon.gated.apikey_commands import apikey
from kanmon.gated.app import App, NotMigrated
from kanmon.gated.auth_commands import allow_group, pairing_group
from kanmon.gated.config import render_config
from kanmon.gated.exits import Exit
from kanmon.gated.hook_commands import hooks_group
from kanmon.gated.memory import limit_malloc_arenas
from kanmon.gated.onboarding_commands import onboarding_group
from kanmon.gated.registry_commands import group, route
from kanmon.gated.run_commands import chat, demo, run, status
from kanmon.gated.task_commands import task
from kanmon.gated.usage_commands import usage
from kanmon.store import NewMessage, StoreUnavailable, head_revision
from kanmon.store.lock import StoreLocked

__all__ = ["cli", "main"]

pass_app = click.make_pass_decorator(App)


class GatedGroup(click.Group):
    """Turns kanmon's errors into one line on stderr and a named exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InvalidInput as exc:
            raise _fail(str(exc), Exit.USAGE) from None
        except StoreLocked as exc:
            raise _Locked(str(exc)) from None
        except (NotMigrated, StoreUnavailable) as exc:
            raise _fail(str(exc), Exit.FAILURE) from None
        except KanmonError as exc:
            raise _fail(str(exc), Exit.FAILURE) from None


class _Failure(click.ClickException):
    exit_code = int(Exit.FAILURE)


class _BadInput(click.ClickException):
    exit_code = int(Exit.USAGE)


class _Locked(click.ClickException):
    exit_code = int(Exit.LOCKED)


def _fail(message: str, code: Exit) -> click.ClickException:
    return _BadInput(message) if code == Exit.USAGE else _Failure(message)


@click.group(cls=GatedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data-dir",
    envvar="KANMON_DATA_DIR",
    metavar="DIR",
    help="Where kanmon keeps its store, groups and runs.  [default: ./kanmon-data]",
)
@click.option(
    "--config", "config_path", metavar="FILE", help="YAML config file.  [default: DIR/kanmon.yaml if present]"
)
@click.version_option(package_name="kanmon")
@click.pass_context
def cli(ctx: click.Context, data_dir: str | None, config_path: str | None) -> None:
    """gated: a polling container orchestrator for chat agents."""
    app = App(data_dir=data_dir, config_path=config_path)
    ctx.obj = app
    ctx.call_on_close(app.close)


@cli.command()
@pass_app
def migrate(app: App) -> None:
    """Create or upgrade the store's schema (a no-op when it is current)."""
    app.store(migrate=True, create=True)
    click.echo(f"store {app.describe_store()} is at schema revision {head_revision()}")


@cli.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("show")
@pass_app
def config_show(app: App) -> None:
    """Print the effective configuration, where each value comes from, and what it does (secrets masked)."""
    click.echo(render_config(app.settings))


@cli.command()
@click.argument("jid")
@click.argument("text")
@click.option("--sender", default="cli", show_default=True, help="Sender id of the message.")
@click.option("--verb", default="message", show_default=True, help="Event type (message, mention, react, …).")
@click.option("--topic", default="", help="Topic (sub-conversation) of the message.")
@click.option("--id", "message_id", default=None, help="Message id; re-sending the same id is a no-op.")
@pass_app
def send(app: App, jid: str, text: str, sender: str, verb: str, topic: str, message_id: str | None) -> None:
    """Put a message into the store as if JID had sent TEXT."""
    result = app.store(create=True).put_message(
        NewMessage(chat_jid=jid, content=text, sender=sender, verb=verb, topic=topic, id=message_id, origin="cli")
    )
    state = "stored" if result.created else "already stored"
    click.echo(f"{state}: seq {result.message.seq} id {result.message.id} in {jid}")


@cli.group()
def agent() -> None:
    """Reference agents that speak the container protocol (SPEC §9)."""


@agent.command("echo")
def agent_echo() -> None:
    """Read one input document on stdin and answer each message with "echo: <text>" in an output block."""
    from kanmon.container import echo_agent

    sys.exit(echo_agent.main())


for _command in (run, demo, chat, status):
    cli.add_command(_command)
cli.add_command(group)
cli.add_command(route)
cli.add_command(onboarding_group)
cli.add_command(apikey)
cli.add_command(task)
cli.add_command(usage)
cli.add_command(adapter)
cli.add_command(allow_group)
cli.add_command(pairing_group)
cli.add_command(hooks_group)


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    limit_malloc_arenas()
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="gated")
