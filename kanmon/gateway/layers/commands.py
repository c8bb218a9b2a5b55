"""The command layer (SPEC §6.2): normalise, recognise ``/cmd`` or ``/cmd@bot``, run it, answer, consume.

Normalisation: trim; drop a leading ``[...]`` media placeholder (``[Photo] /new``); drop a leading ``@bot`` mention
(``@kanmon_bot /ping``). The first token must then be ``/name`` or ``/name@bot`` for a known name, compared
case-insensitively, and end at whitespace (so ``/new\\nhello`` is ``/new`` with ``hello``). An unknown ``/foo`` is
not a command: it is ordinary text for the next layers. ``@other_bot`` and ``/ping@other_bot`` address someone else
when the bot's names are configured, and are text too.

A command runs wherever it falls in a batch and is never forwarded to an agent; only the text after ``/new`` goes on
to the agent, as the message's own (:attr:`~kanmon.gateway.decisions.Consumed.then`). Its answer is an outbound row
with a derived id: when a crash makes the loop read the batch again, the stored answer shows the command already
ran, and it is not run twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kanmon.gateway.context import LayerContext, reply_id
from kanmon.gateway.decisions import Consumed, Layer
from kanmon.gateway.errors import CommandError
from kanmon.gateway.layers.command_handlers import COMMANDS, Answer, CommandRequest
from kanmon.store import Message, StoreFenced, StoreUnavailable

__all__ = ["CommandCall", "normalise", "parse_command", "run_command"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CommandCall:
    """A recognised command: its lowercase name and the text after it."""

    name: str
    args: str


def normalise(content: str, ctx: LayerContext) -> str:
    """``content`` without surrounding space, a leading media placeholder or a leading mention of this bot."""
    text = content.strip()
    if text.startswith("[") and "]" in text:
        text = text[text.index("]") + 1 :].strip()
    if text.startswith("@"):
        head, rest = _split(text)
        if ctx.is_bot_name(head[1:]):
            text = rest
    return text


def parse_command(content: str, ctx: LayerContext) -> CommandCall | None:
    """The command ``content`` carries, or None when it is ordinary text."""
    text = normalise(content, ctx)
    if not text.startswith("/"):
        return None
    head, args = _split(text)
    name, at, bot = head[1:].partition("@")
    if at and not ctx.is_bot_name(bot):
        return None
    name = name.lower()
    if name not in COMMANDS:
        return None
    return CommandCall(name, args)


def run_command(call: CommandCall, message: Message, ctx: LayerContext, owner: str) -> Consumed:
    """Run ``call`` for the chat owned by ``owner``, write its answer, and consume the message."""
    if ctx.dry_run:  # what it would answer is not known without running it; what its text does is
        passes_on = COMMANDS[call.name].passes_on
        then = passes_on(call.args) if passes_on is not None else ""
        return Consumed(message, Layer.COMMAND, f"would run /{call.name} for {owner}", then=then or None)
    answered = ctx.store.get_message(message.chat_jid, reply_id(message))
    if answered is not None:
        return Consumed(message, Layer.COMMAND, f"/{call.name} already answered", (answered,), repeated=True)
    answer = _execute(call, message, ctx, owner)
    if isinstance(answer, str):
        answer = Answer(answer)
    return Consumed(message, Layer.COMMAND, f"/{call.name}", (ctx.reply(message, answer.text),), then=answer.then)


def _execute(call: CommandCall, message: Message, ctx: LayerContext, owner: str) -> str | Answer:
    spec = COMMANDS[call.name]
    if spec.root_only and not ctx.is_root(owner):
        logger.info("command refused command=%s owner=%s (root only)", call.name, owner)
        return "Permission denied: root groups only."
    if spec.root_only and not ctx.auth.is_operator(message):
        logger.info("command refused command=%s owner=%s sender=%s (not an operator)", call.name, owner, message.sender)
        return "Permission denied: operators only (auth.operators)."
    if spec.writes:
        ctx.before_write()  # its change commits at once: no earlier row of the batch may be decided by it
    try:
        return spec.handler(CommandRequest(call.name, call.args, message, ctx, owner))
    except CommandError as exc:
        logger.info("command failed command=%s: %s", call.name, exc.reason)
        return f"Failed: {exc.reason}"
    except (StoreFenced, StoreUnavailable):
        raise  # the store's trouble, not the command's: the tick backs off and reads the batch again
    except Exception:
        # A command must never fail the tick: the loop would read the same batch again and fail again, and no
        # chat would be served any more. This one is answered and consumed.
        logger.exception("command raised command=%s", call.name)
        return f"Failed: /{call.name} ran into an error in kanmon (logged)"


def _split(text: str) -> tuple[str, str]:
    parts = text.split(maxsplit=1)
    return parts[0], (parts[1].strip() if len(parts) > 1 else "")
