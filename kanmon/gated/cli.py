"""The `gated` command line (SPEC §13): thin click commands over the store and the daemon wiring.

Errors a user can cause print one line and exit 2 having changed nothing; no command prints a traceback for them.

The commands are loaded lazily (click's "lazy loading" pattern): ``gated agent echo`` runs as every agent run does
and must start in milliseconds, not after importing the store, FastAPI and the daemon, so this module imports
only click and each command's module is imported when that command is asked for. Listing them (``gated --help``,
shell completion) imports none: each :class:`LazyCommand` carries its summary. A new command goes into
:data:`COMMANDS` with the first sentence of its help, not into an import at the top of this file.
"""

from __future__ import annotations

import importlib
import logging
import runpy
import sys
from pathlib import Path
from typing import Any, NamedTuple

import click
from click.core import ParameterSource
from click.shell_completion import CompletionItem

from kanmon.errors import InvalidInput, KanmonError, closest_name
from kanmon.gated.exits import Exit
from kanmon.gated.logs import log_format
from kanmon.gated.memory import limit_malloc_arenas

__all__ = ["COMMANDS", "LazyCommand", "cli", "main"]


class LazyCommand(NamedTuple):
    """A command of ``gated`` loaded on first use: where it is, and its summary for ``gated --help`` and shell
    completion, which list every command without importing any (``tests/unit/gated/test_cli_lazy.py`` checks that
    each summary is the command's own)."""

    target: str  # "module:attribute"
    summary: str  # the first sentence of its help


#: Every command of ``gated`` but those defined here, imported on first use.
COMMANDS: dict[str, LazyCommand] = {
    "run": LazyCommand(
        "kanmon.gated.run_commands:run",
        "Run the gateway: poll the store, run agents, deliver their replies (SIGINT/SIGTERM stop it cleanly).",
    ),
    "demo": LazyCommand(
        "kanmon.gated.run_commands:demo",
        "Run a demo: a group answered by the echo agent on the process runtime, and a chat with it right here.",
    ),
    "chat": LazyCommand(
        "kanmon.gated.run_commands:chat",
        "Talk to group FOLDER from the terminal; a running `gated run` (or `gated demo`) on this store answers.",
    ),
    "status": LazyCommand(
        "kanmon.gated.status_commands:status",
        "Runs in flight, chats the impulse gate holds, chats waiting for their agent, recent runs, dead letters.",
    ),
    "runs": LazyCommand(
        "kanmon.gated.inspect_commands:runs",
        "The latest runs, newest first: status, group, chat, batch, replies, duration, error.",
    ),
    "run-log": LazyCommand(
        "kanmon.gated.inspect_commands:run_log",
        "Run RUN_ID: its record, then the last 64 KiB of its stderr and of the stdout it wrote outside output blocks.",
    ),
    "dead": LazyCommand(
        "kanmon.gated.inspect_commands:dead",
        "Dead letters: messages whose batch failed its last attempt (oldest first), and the run that last tried each.",
    ),
    "replies": LazyCommand(
        "kanmon.gated.inspect_commands:replies",
        "What was sent to CHAT (a chat JID), oldest first: each reply, its run, and its delivery (attempts, error).",
    ),
    "migrate": LazyCommand(
        "kanmon.gated.store_commands:migrate", "Create or upgrade the store's schema (a no-op when it is current)."
    ),
    "config": LazyCommand("kanmon.gated.store_commands:config", "Inspect the configuration."),
    "send": LazyCommand("kanmon.gated.store_commands:send", "Put a message into the store as if JID had sent TEXT."),
    "group": LazyCommand("kanmon.gated.registry_commands:group", "Register, list and remove agent groups."),
    "route": LazyCommand(
        "kanmon.gated.registry_commands:route",
        "Add, list and remove routes (walked in (seq, id) order; the first match wins).",
    ),
    "onboarding": LazyCommand(
        "kanmon.gated.onboarding_commands:onboarding_group",
        "Chats nobody owns, waiting for approval (needs onboarding.enabled: true).",
    ),
    "apikey": LazyCommand(
        "kanmon.gated.apikey_commands:apikey", "API keys of the OpenAI-compatible API (/v1/chat/completions)."
    ),
    "task": LazyCommand(
        "kanmon.gated.task_commands:task",
        "Scheduled tasks: a prompt put into a group's chat on a cron schedule, every interval, or once.",
    ),
    "usage": LazyCommand(
        "kanmon.gated.usage_commands:usage",
        "Tokens and cost the agents reported: today per group (against its daily budget), per day, per session.",
    ),
    "adapter": LazyCommand(
        "kanmon.gated.adapter_commands:adapter",
        "Channel adapters: processes that bridge a chat platform to gated over HTTP.",
    ),
    "allow": LazyCommand(
        "kanmon.gated.auth_commands:allow_group",
        "The sender allowlist (used where auth.mode or auth.platforms says allowlist).",
    ),
    "pairing": LazyCommand(
        "kanmon.gated.auth_commands:pairing_group", "DM pairing codes: strangers in direct chats asking to be allowed."
    ),
    "hooks": LazyCommand(
        "kanmon.gated.hook_commands:hooks_group",
        "Lifecycle hook plugins (hooks.modules and kanmon.hooks entry points).",
    ),
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
            module, _, attribute = COMMANDS[cmd_name].target.partition(":")
            command = getattr(importlib.import_module(module), attribute)
            assert isinstance(command, click.Command), f"{COMMANDS[cmd_name].target} is not a click command"
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """click's, with a "did you mean" for a mistyped command: click suggests only among loaded commands."""
        name = args[0] if args else ""
        known = self.list_commands(ctx)
        if name and not name.startswith("-") and name not in known and not ctx.resilient_parsing:
            hint = closest_name(name, known)
            if hint is not None:
                ctx.fail(f"No such command {name!r}. Did you mean {hint!r}?")
        return super().resolve_command(ctx, args)

    def listed(self, ctx: click.Context) -> list[tuple[str, click.Command]]:
        """Each visible command, or for one not loaded yet a stand-in with its summary as help: nothing is imported.

        ``gated --help`` and shell completion (every Tab press after ``gated``) list these; click's own listing
        loads every command for its summary, which took 2 s.
        """
        found: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is None:
                found.append((name, click.Command(name, help=COMMANDS[name].summary)))
            elif not command.hidden:
                found.append((name, command))
        return found

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The ``Commands`` section of ``gated --help``, as click writes it, from :meth:`listed`."""
        rows = self.listed(ctx)
        if rows:
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                formatter.write_dl([(name, command.get_short_help_str(limit)) for name, command in rows])

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """The command names that start with ``incomplete`` as click offers them, from :meth:`listed`, then click's
        completions of the group's options."""
        commands = [
            CompletionItem(name, help=command.get_short_help_str())
            for name, command in self.listed(ctx)
            if name.startswith(incomplete)
        ]
        return commands + click.Command.shell_complete(self, ctx, incomplete)

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

    if ctx.get_parameter_source("data_dir") is ParameterSource.ENVIRONMENT:
        data_dir = None  # the settings read KANMON_DATA_DIR themselves, and name it as the source (config show)
    app = App(data_dir=data_dir, config_path=config_path)
    ctx.obj = app
    ctx.call_on_close(app.close)


@cli.group()
def agent() -> None:
    """Reference agents that speak the container protocol (docs/agent-protocol.md in the source)."""


@agent.command("echo")
def agent_echo() -> None:
    """Read one input document on stdin and answer each message with "echo: <text>" in an output block."""
    runpy.run_path(str(ECHO_AGENT), run_name="__main__")  # exits with the agent's status


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    limit_malloc_arenas()
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="gated")
