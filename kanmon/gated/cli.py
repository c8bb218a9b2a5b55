"""The `gated` command line (SPEC §13): thin click commands over the store and the daemon wiring.

Errors a user can cause print one line and exit 2 having changed nothing; no command prints a traceback for them.

The commands are loaded lazily (click's "lazy loading" pattern): ``gated agent echo`` runs as every agent run does
and must start in milliseconds, not after importing the store, FastAPI and the daemon, so this module imports
only click and each command's module is imported when that command is asked for (or listed, for ``--help``).
A new command goes into :data:`COMMANDS`, not into an import at the top of this file.
"""

from __future__ import annotations

import importlib
import logging
import runpy
import sys
from pathlib import Path
from typing import Any

import click

from kanmon.errors import InvalidInput, KanmonError
from kanmon.gated.exits import Exit
from kanmon.gated.logs import log_format
from kanmon.gated.memory import limit_malloc_arenas

__all__ = ["COMMANDS", "cli", "main"]

#: Every command of ``gated`` but those defined here: name -> "module:attribute", imported on first use.
COMMANDS: dict[str, str] = {
    "run": "kanmon.gated.run_commands:run",
    "demo": "kanmon.gated.run_commands:demo",
    "chat": "kanmon.gated.run_commands:chat",
    "status": "kanmon.gated.status_commands:status",
    "runs": "kanmon.gated.inspect_commands:runs",
    "run-log": "kanmon.gated.inspect_commands:run_log",
    "dead": "kanmon.gated.inspect_commands:dead",
    "replies": "kanmon.gated.inspect_commands:replies",
    "migrate": "kanmon.gated.store_commands:migrate",
    "config": "kanmon.gated.store_commands:config",
    "send": "kanmon.gated.store_commands:send",
    "group": "kanmon.gated.registry_commands:group",
    "route": "kanmon.gated.registry_commands:route",
    "onboarding": "kanmon.gated.onboarding_commands:onboarding_group",
    "apikey": "kanmon.gated.apikey_commands:apikey",
    "task": "kanmon.gated.task_commands:task",
    "usage": "kanmon.gated.usage_commands:usage",
    "adapter": "kanmon.gated.adapter_commands:adapter",
    "allow": "kanmon.gated.auth_commands:allow_group",
    "pairing": "kanmon.gated.auth_commands:pairing_group",
    "hooks": "kanmon.gated.hook_commands:hooks_group",
}

#: The reference agent, run as the standard-library-only file it is (no kanmon package import at all).
ECHO_AGENT = Path(__file__).resolve().parent.parent / "container" / "echo_agent.py"


class GatedGroup(click.Group):
    """Loads the commands of :data:`COMMANDS` on first use, and turns kanmon's errors into one line on stderr and a
    named exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, _, attribute = COMMANDS[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            assert isinstance(command, click.Command), f"{COMMANDS[cmd_name]} is not a click command"
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InvalidInput as exc:
            raise _fail(str(exc), Exit.USAGE) from None
        except KanmonError as exc:
            from kanmon.store.lock import StoreLocked  # only once something failed: the store is not imported before

            if isinstance(exc, StoreLocked):
                raise _Locked(str(exc)) from None
            raise _fail(str(exc), Exit.FAILURE) from None


class _OneLine(click.ClickException):
    """click's ``Error: …`` line, or the same as one JSON log line once logging is JSON (``gated run --log-format
    json``: whatever reads standard error parses every line)."""

    def show(self, file: Any = None) -> None:
        if log_format() == "json":
            logging.getLogger("kanmon.gated").error("%s", self.format_message(), extra={"exit_code": self.exit_code})
        else:
            super().show(file)


class _Failure(_OneLine):
    exit_code = int(Exit.FAILURE)


class _BadInput(_OneLine):
    exit_code = int(Exit.USAGE)


class _Locked(_OneLine):
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
    if ctx.invoked_subcommand == "agent":
        return  # an agent reads its stdin and needs neither settings nor the store
    from kanmon.gated.app import App

    app = App(data_dir=data_dir, config_path=config_path)
    ctx.obj = app
    ctx.call_on_close(app.close)


@cli.group()
def agent() -> None:
    """Reference agents that speak the container protocol (SPEC §9)."""


@agent.command("echo")
def agent_echo() -> None:
    """Read one input document on stdin and answer each message with "echo: <text>" in an output block."""
    runpy.run_path(str(ECHO_AGENT), run_name="__main__")  # exits with the agent's status


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    limit_malloc_arenas()
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="gated")
