"""The chat commands of SPEC §6.2, one small function each, and the table the command layer looks them up in.

A handler changes what its command changes and returns the reply text (or an :class:`Answer`, when the message
carries text on to the agent); bad arguments raise :class:`~kanmon.gateway.errors.CommandError`, whose message the
layer sends instead (and nothing changed).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from kanmon.errors import InvalidInput
from kanmon.gateway import onboarding, pairing
from kanmon.gateway.context import LayerContext
from kanmon.gateway.errors import CommandError
from kanmon.gateway.onboarding import glob_literal
from kanmon.gateway.session_reset import reset_session
from kanmon.gateway.tasks import task_line
from kanmon.gateway.usage_report import today_spend
from kanmon.queue import lane_for
from kanmon.store import Message

__all__ = ["COMMANDS", "Answer", "CommandRequest", "CommandSpec", "glob_literal"]

logger = logging.getLogger(__name__)

_TOPIC_TOKEN = re.compile(r"#[A-Za-z0-9_][A-Za-z0-9_-]{0,62}")


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """One command to run: its name, the text after it, the message that carried it, and the chat's owner."""

    name: str
    args: str
    message: Message
    ctx: LayerContext
    owner: str


@dataclass(frozen=True, slots=True)
class Answer:
    """A command's reply, and the text its message then carries on to the agent as its own (``/new text``)."""

    text: str
    then: str | None = None


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """A command's handler, whether only a root group (:meth:`LayerContext.is_root`) may run it, and whether it
    commits a change of its own to the store at once (a route, a reset, a task: the batch's earlier rows are then
    recorded before it runs, :attr:`LayerContext.before_write`)."""

    handler: Callable[[CommandRequest], str | Answer]
    root_only: bool = False
    usage: str = ""
    writes: bool = False
    #: The text a message carrying this command with these arguments goes on to the agent with ('' none): the
    #: handler's :attr:`Answer.then`, known without running it (``gated route test`` runs no command).
    passes_on: Callable[[str], str] | None = None


def _new_passes_on(args: str) -> str:
    """The text after ``/new [#topic]`` ('' none), as the message's own: ``#t rest`` keeps its prefix, so the prefix
    layer (not a second code path) puts it in the session ``#t``."""
    head, tail = _split_head(args)
    if _TOPIC_TOKEN.fullmatch(head):
        return f"{head} {tail}" if tail else ""
    return args


def _new(req: CommandRequest) -> str | Answer:
    # `/new #t rest` clears the topic session #t; `/new rest` clears the chat's own session (topic '' for an
    # ordinary chat, the conversation of a web topic or platform thread).
    head, _ = _split_head(req.args)
    if _TOPIC_TOKEN.fullmatch(head):
        topic, label = head, f"Topic session {head} cleared."
    else:
        topic, label = req.message.topic, "Session cleared."
    group = req.ctx.group(req.owner)
    flush = group is not None and group.container_config.get("memory_flush") is True  # before its topic's next run
    reset_session(
        req.ctx.store, req.owner, topic, chat_jid=req.message.chat_jid, reason="new", detail="/new", flush=flush,
        now=req.ctx.now(), hooks=req.ctx.hooks,
    )  # fmt: skip
    if flush:
        req.ctx.queue.offer(lane_for(req.owner, req.message.chat_jid, topic))  # the flush runs now, not at next speech
    content = _new_passes_on(req.args)
    if not content:
        return label
    # The text goes on to the agent as this message's own, in its place in the batch. A copy posted as a new row came
    # after every row that had arrived since, in the agent's prompt and in routing (a sticky @folder sent right
    # after the /new carried its text to the other group).
    return Answer(f"{label} Processing your message...", then=content)


def _split_head(text: str) -> tuple[str, str]:
    parts = text.split(maxsplit=1)
    return (parts[0] if parts else ""), (parts[1].strip() if len(parts) > 1 else "")


def _ping(req: CommandRequest) -> str:
    ctx = req.ctx
    group = ctx.group(req.owner)
    session = ctx.store.get_session(req.owner, req.message.topic)
    return "\n".join(
        [
            "pong",
            f"group: {group.name if group else req.owner} ({req.owner})",
            f"session: {session.session_id[:8] if session else 'none'}",
            f"active runs: {ctx.queue.running_count()}",
            f"registered groups: {len(ctx.groups())}",
        ]
    )


def _chatid(req: CommandRequest) -> str:
    return req.message.chat_jid


def _stop(req: CommandRequest) -> str:
    chat = req.ctx.chat(req.message.chat_jid)
    # The lane this chat's messages go to: the sticky group steers it, else the owner.
    folder = chat.sticky_group if chat is not None and chat.sticky_group else req.owner
    if req.ctx.queue.stop(lane_for(folder, req.message.chat_jid, req.message.topic)):
        logger.info("stop requested", extra={"folder": folder})
        return "Container stopped."
    return "No active container for this chat."


def _status(req: CommandRequest) -> str:
    ctx = req.ctx
    counts = ctx.store.counts()
    cursor = int(ctx.store.get_state("last_seq", "0") or 0)
    runs = ctx.store.count_runs()
    by_status = ", ".join(f"{status} {n}" for status, n in sorted(runs.items())) or "none"
    # what the loop has still to read: rows stored after this message (it and those before it are being read now)
    unread = max(0, counts["last_seq"] - max(cursor, req.message.seq))
    return "\n".join(
        [
            "status",
            f"groups: {counts['groups']}",
            f"runs in flight: {counts['runs_in_flight']} (all runs: {by_status})",
            f"queue: {ctx.queue.running_count()} running, {ctx.queue.waiting_count()} waiting",
            f"lag: {unread} {'message' if unread == 1 else 'messages'} stored since this one, not yet read",
            f"dead letters: {counts['dead_letters']}",
            *_usage_today(req),
        ]
    )


def _usage_today(req: CommandRequest) -> list[str]:
    """``/status``'s usage lines: each group's spend of its today (of groups with a budget or spend today), today
    being the day the command was sent."""
    spends = today_spend(req.ctx.store, req.ctx.groups().values(), req.ctx.timezone, req.message.timestamp)
    spends = [spend for spend in spends if spend.spent or spend.budget is not None]
    return ["usage today:" if spends else "usage today: none", *(f"  {spend.line()}" for spend in spends)]


def _approve(req: CommandRequest) -> str:
    parts = req.args.split()
    if len(parts) != 2:
        raise CommandError("approve", "usage: /approve <jid> <folder>")
    jid, folder = parts
    try:
        approval = onboarding.approve(req.ctx.store, jid, folder, by=req.owner, ctx=req.ctx)
    except InvalidInput as exc:
        raise CommandError("approve", str(exc)) from exc
    if not approval.changed:
        return f"Approved {jid} → {folder} already."
    answering = " Answering its newest waiting message." if approval.reposted is not None else ""
    return f"Approved {jid} → {folder} (route {approval.route_id}).{answering}"


def _reject(req: CommandRequest) -> str:
    parts = req.args.split()
    if len(parts) != 1:
        raise CommandError("reject", "usage: /reject <jid>")
    jid = parts[0]
    try:
        onboarding.reject(req.ctx.store, jid, by=req.owner, ctx=req.ctx)
    except InvalidInput as exc:
        raise CommandError("reject", str(exc)) from exc
    return f"Rejected {jid}."


def _pair(req: CommandRequest) -> str:
    """``/pair CODE [FOLDER]`` (root groups): approve a DM pairing code, as ``gated pairing approve`` does."""
    parts = req.args.split()
    if len(parts) not in (1, 2):
        raise CommandError("pair", "usage: /pair CODE [folder]")
    folder = parts[1] if len(parts) == 2 else ""
    by = f"{req.message.sender or 'someone'} in {req.message.chat_jid}"
    try:
        code, entry = pairing.approve(
            req.ctx.store, parts[0], by=by, now=req.ctx.now(), folder=folder, config=req.ctx.auth
        )
    except InvalidInput as exc:
        raise CommandError("pair", str(exc)) from exc
    req.ctx.forget()  # the allowlist changed: the rest of the batch reads it from the store
    where = f" in {folder}" if folder else ""
    return f"Paired {code.sender_name or code.sender} ({code.sender}){where}: allowlist entry {entry.id}."


def _tasks(req: CommandRequest) -> str:
    """``/tasks``: the tasks of the chat's group; ``/tasks cancel ID``: end one of them (issue 15)."""
    parts = req.args.split()
    if not parts:
        tasks = req.ctx.store.list_tasks(req.owner)
        if not tasks:
            return f"No tasks for {req.owner}."
        return "\n".join([f"Tasks of {req.owner}:", *(task_line(task) for task in tasks)])
    # ASCII digits only: "²" is a digit to str.isdigit but not to int(); a task id fits 64 bits
    if len(parts) != 2 or parts[0].lower() != "cancel" or not (parts[1].isascii() and parts[1].isdigit()):
        raise CommandError("tasks", "usage: /tasks [cancel ID]")
    if int(parts[1]) >= 2**63:
        raise CommandError("tasks", "usage: /tasks [cancel ID]")
    task_id, message = int(parts[1]), req.message
    reason = f"cancelled in {message.chat_jid} by {message.sender or 'someone'}"
    task = req.ctx.store.set_task_status(
        task_id, "done", next_fire_at=None, reason=reason, only_from=["active", "paused"], folder=req.owner
    )
    if task is None:
        raise CommandError("tasks", f"no task {task_id} in {req.owner}")
    if task.reason != reason:
        return f"Task {task_id} is {task.status} already."
    logger.info("task %d cancelled from the chat by %s", task_id, message.sender, extra={"task": task_id})
    return f"Task {task_id} cancelled."


COMMANDS: dict[str, CommandSpec] = {
    "new": CommandSpec(_new, usage="/new [#topic] [text]", writes=True, passes_on=_new_passes_on),
    "ping": CommandSpec(_ping),
    "chatid": CommandSpec(_chatid),
    "stop": CommandSpec(_stop),
    "status": CommandSpec(_status, root_only=True),
    "approve": CommandSpec(_approve, root_only=True, usage="/approve <jid> <folder>", writes=True),
    "reject": CommandSpec(_reject, root_only=True, usage="/reject <jid>", writes=True),
    "tasks": CommandSpec(_tasks, usage="/tasks [cancel ID]", writes=True),
    "pair": CommandSpec(_pair, root_only=True, usage="/pair CODE [folder]", writes=True),
}
