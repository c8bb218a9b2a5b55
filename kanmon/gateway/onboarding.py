"""Onboarding (SPEC §11): chats nobody owns wait on a pending list until a root group approves or rejects them.

Why it exists: without it, a message from a chat no route covers is skipped and nobody ever hears of it. With
``onboarding.enabled`` the loop hands each such row to :func:`note_unowned`, which puts the chat on the list the
first time (logged once, and a system message to every root group so their agents know: the stranger's name one
quoted line, and at most :data:`MAX_ANNOUNCED` such notes queued per group) and afterwards only counts.
The rows themselves stay ``skipped``, exactly as without onboarding.

``/approve <jid> <folder>`` (a root group's chat) and ``gated onboarding approve`` call :func:`approve`: it adds a
``chat_jid=<jid>`` route to the folder and answers the newest waiting message by posting a copy of it (id
``onboard-<seq>``) that the loop then routes like any new row, so the poll cursor never has to move back. Older
waiting messages stay skipped. The route, the decision and the copy are one store transaction, and approving again
to the same folder changes nothing, so a failed approval can simply be retried. ``/reject`` and ``gated onboarding
reject`` call :func:`reject`: the chat's later messages are skipped without putting it on the list again.

State lives in ``router_state``, two keys per chat:

- ``onboarding:<jid>`` — the decision: ``pending``, ``approved <folder>`` or ``rejected``. Written by the loop only
  from absent to ``pending`` (compare-and-set), by approve and reject unconditionally.
- ``onboarding-waiting:<jid>`` — what waited (JSON): count, first sender and time, the newest row. Written by the
  loop only (one gated per store), while the chat is pending; a batch read twice after a crash counts once.

Functions here block (store calls): the loop calls :func:`note_unowned` from its dispatch worker thread.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import asdict, dataclass
from typing import Literal

from kanmon.errors import InvalidInput
from kanmon.folders import is_valid_folder, jid_problem, split_jid
from kanmon.gateway.context import GATEWAY_ORIGIN, LayerContext
from kanmon.gateway.decisions import IdleQueue
from kanmon.gateway.owner import DIRECT_PLATFORMS, resolve_owner
from kanmon.message_ids import derived_id
from kanmon.router import validate_route
from kanmon.store import Message, NewMessage, NotFound, Store
from kanmon.text import one_line

__all__ = [
    "MAX_ANNOUNCED",
    "MAX_NAME_CHARS",
    "MORE_WAITING",
    "ONBOARDING_KEY",
    "WAITING_KEY",
    "Approval",
    "Entry",
    "OnboardingError",
    "Waiting",
    "approve",
    "check_jid",
    "entries",
    "get_entry",
    "glob_literal",
    "note_unowned",
    "reject",
    "repost_id",
]

logger = logging.getLogger(__name__)

#: At most this many onboarding notes wait in a root group's queue for its agent's next run; the last of them says
#: more chats wait (a bot opening a thousand direct chats must not put a thousand notes into one prompt).
MAX_ANNOUNCED = 10
#: A stranger's display name or sender id is shown to root groups' agents cut to this many characters.
MAX_NAME_CHARS = 64
MORE_WAITING = (
    "More chats are waiting for onboarding than these notes name; "
    "an operator lists them all with `gated onboarding list`."
)

ONBOARDING_KEY = "onboarding:{jid}"
WAITING_KEY = "onboarding-waiting:{jid}"
_DECISION_PREFIX = ONBOARDING_KEY.format(jid="")
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")

State = Literal["pending", "approved", "rejected"]


class OnboardingError(InvalidInput):
    """Raised when an approve or reject cannot be done as asked; nothing was changed. The message is one line."""


@dataclass(frozen=True, slots=True)
class Waiting:
    """The messages a pending chat sent: how many, who and when first, and the newest (the one approve answers)."""

    count: int
    first_seq: int
    first_sender: str
    first_sender_name: str
    first_at: str  # ISO 8601, UTC
    last_seq: int
    last_id: str
    last_at: str

    def to_json(self) -> str:
        """The stored form."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> Waiting | None:
        """The stored form read back; None when absent or unreadable (then it is rebuilt from the next message)."""
        if not text:
            return None
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError):
            logger.warning("onboarding: unreadable waiting record %r ignored", text[:200])
            return None


@dataclass(frozen=True, slots=True)
class Entry:
    """A chat on the onboarding list: its decision (``folder`` when approved) and what it sent while waiting."""

    jid: str
    state: State
    folder: str | None = None
    waiting: Waiting | None = None


@dataclass(frozen=True, slots=True)
class Approval:
    """What :func:`approve` did: the chat's route (added now, or found), the copy of the newest waiting message
    posted for the folder's agent (None when nothing waited), how many messages waited, and whether anything
    changed (False when the chat was approved to that folder already)."""

    jid: str
    folder: str
    route_id: int
    reposted: Message | None
    waited: int
    changed: bool


def glob_literal(text: str) -> str:
    """A glob that matches exactly ``text``: every metacharacter escaped."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def repost_id(seq: int) -> str:
    """The id of the copy of waiting message ``seq`` that approval posts: derived, so approving twice posts once."""
    return derived_id("onboard-", seq)


def check_jid(jid: str) -> str:
    """Return ``jid`` if it can be onboarded (``<platform>:<room>``, no spaces, not web/local); else raise."""
    platform, _ = split_jid(jid)
    if jid_problem(jid) is not None:
        raise OnboardingError(f"{jid!r} is not a chat JID (<platform>:<room>, no spaces)")
    if platform in DIRECT_PLATFORMS:
        raise OnboardingError(f"{jid}: {platform}: chats belong to their folder directly; there is nothing to approve")
    return jid


# ---------------------------------------------------------------------------------------------------- the loop side
def note_unowned(row: Message, ctx: LayerContext) -> bool:
    """Record that ``row`` came from a chat nobody owns; True when this put the chat on the pending list.

    Rows that could not wake an agent anyway (a verb of weight 0, such as ``typing``), rows of ``web:``/``local:``
    chats (they name a folder; there is nothing to approve) and rows kanmon posted itself are passed over.
    """
    platform, _ = split_jid(row.chat_jid)
    if platform in DIRECT_PLATFORMS or row.origin == GATEWAY_ORIGIN or ctx.impulse.weight(row.verb) <= 0:
        return False
    store = ctx.store
    key = ONBOARDING_KEY.format(jid=row.chat_jid)
    decision = store.get_state(key)
    if decision is None and store.swap_state(key, None, "pending"):
        _count(store, row)
        _announce(row, ctx)
        return True
    if decision is None:
        decision = store.get_state(key)  # someone decided in between
    if decision == "pending":
        _count(store, row)
    else:
        logger.debug("onboarding: seq=%d of %s skipped (%s)", row.seq, row.chat_jid, decision)
    return False


def _count(store: Store, row: Message) -> None:
    key = WAITING_KEY.format(jid=row.chat_jid)
    waiting = Waiting.from_json(store.get_state(key))
    at = _iso(row.received_at)
    if waiting is None:
        waiting = Waiting(1, row.seq, row.sender, row.sender_name, at, row.seq, row.id, at)
    elif row.seq > waiting.last_seq:  # a batch read again after a crash counts once
        waiting = Waiting(
            waiting.count + 1,
            waiting.first_seq,
            waiting.first_sender,
            waiting.first_sender_name,
            waiting.first_at,
            row.seq,
            row.id,
            at,
        )
    else:
        return
    store.set_state(key, waiting.to_json())


def _announce(row: Message, ctx: LayerContext) -> None:
    name, sender = _shown(row.sender_name or ""), _shown(row.sender or "")
    who = f"{name} ({sender})" if name != '""' else (sender if sender != '""' else "an unknown sender")
    logger.info(
        "onboarding: chat %s is waiting for approval (first message from %s); approve with `/approve %s <folder>` "
        "from a root group or `gated onboarding approve %s FOLDER`",
        row.chat_jid,
        who,
        row.chat_jid,
        row.chat_jid,
    )
    body = (
        f"Chat {row.chat_jid} is waiting for onboarding (first message from {who}). "
        f"A root group can answer /approve {row.chat_jid} <folder> or /reject {row.chat_jid}."
    )
    for folder in sorted(ctx.groups()):
        if not ctx.is_root(folder):
            continue
        queued = sum(note.event == "onboarding" for note in ctx.store.system_messages_for(folder))
        if queued < MAX_ANNOUNCED:
            text = body if queued < MAX_ANNOUNCED - 1 else MORE_WAITING
            ctx.store.add_system_message(folder, origin=GATEWAY_ORIGIN, event="onboarding", body=text, now=ctx.now())


def _shown(text: str) -> str:
    """``text`` a stranger chose (a display name, a sender id) as an announcement shows it: one line of printable
    characters, at most :data:`MAX_NAME_CHARS` of them, in double quotes (JSON's escapes), so it cannot pass for
    kanmon's own words."""
    line = one_line(text)
    if len(line) > MAX_NAME_CHARS:
        line = line[: MAX_NAME_CHARS - 1] + "…"
    return json.dumps(line, ensure_ascii=False)


# ---------------------------------------------------------------------------------------------------- decisions
def get_entry(store: Store, jid: str) -> Entry | None:
    """The onboarding entry of ``jid``, if it has one."""
    return _entry(jid, store.get_state(ONBOARDING_KEY.format(jid=jid)), store)


def entries(store: Store) -> list[Entry]:
    """Every chat on the onboarding list, pending ones first (oldest first), then decided ones by JID."""
    found = []
    for key, decision in store.states(_DECISION_PREFIX).items():
        entry = _entry(key[len(_DECISION_PREFIX) :], decision, store)
        if entry is not None:
            found.append(entry)

    def order(entry: Entry) -> tuple[int, int, str]:
        first = entry.waiting.first_seq if entry.waiting is not None else 0
        return (0 if entry.state == "pending" else 1, first if entry.state == "pending" else 0, entry.jid)

    return sorted(found, key=order)


def _entry(jid: str, decision: str | None, store: Store) -> Entry | None:
    if decision is None:
        return None
    state, _, folder = decision.partition(" ")
    if state not in ("pending", "approved", "rejected"):
        logger.warning("onboarding: unknown decision %r for %s ignored", decision, jid)
        return None
    waiting = Waiting.from_json(store.get_state(WAITING_KEY.format(jid=jid)))
    return Entry(jid, state, folder or None, waiting)  # type: ignore[arg-type]  # state checked above


def approve(store: Store, jid: str, folder: str, *, by: str, ctx: LayerContext | None = None) -> Approval:
    """Route ``jid`` to ``folder`` and answer its newest waiting message; raise :class:`OnboardingError` if not.

    The route, the decision and the copy of the newest waiting message are written in one store transaction
    (:meth:`~kanmon.store.Store.record_approval`): all of them or none. Approving a chat again to the same folder
    (a retry, a second ``/approve``) succeeds and changes nothing (``Approval.changed`` is False); what an
    interrupted approval left behind, such as its route, is reused. Raises :class:`OnboardingError` when the JID
    cannot be onboarded, the folder is not a registered group, or the chat belongs to another folder already.

    ``by`` names who decided, for the log. ``ctx`` is the loop's batch context when a chat command calls this (its
    cached routes are dropped once the route is added).
    """
    ctx = ctx or LayerContext(store, IdleQueue())
    check_jid(jid)
    if not is_valid_folder(folder) or ctx.group(folder) is None:
        raise OnboardingError(f"group {folder!r} not found")
    key = ONBOARDING_KEY.format(jid=jid)
    decision = store.get_state(key)
    waiting = Waiting.from_json(store.get_state(WAITING_KEY.format(jid=jid)))
    waited = waiting.count if waiting is not None and decision == "pending" else 0
    owner = resolve_owner(ctx, jid)
    if owner.folder is not None and owner.folder != folder:
        if decision == f"approved {owner.folder}":
            raise OnboardingError(f"{jid} is already approved -> {owner.folder}; remove its route to move it")
        raise OnboardingError(f"{jid} already belongs to {owner.folder}")
    match = f"chat_jid={glob_literal(jid)}"
    try:
        validate_route(match, folder, folders=ctx.groups().keys(), daemons=())  # as for `gated route add`
    except InvalidInput as exc:
        raise OnboardingError(str(exc)) from exc
    # Only a pending chat's newest message is answered; an approved one's copy was posted when it was approved.
    repost = _repost(store, jid, waiting) if decision == "pending" else None
    try:
        recorded = store.record_approval(
            folder=folder, match=match, decision_key=key, decision=f"approved {folder}", repost=repost, now=ctx.now()
        )
    except NotFound as exc:  # the group went away since it was checked
        raise OnboardingError(f"group {folder!r} not found") from exc
    ctx.forget()
    reposted = recorded.reposted if repost is not None else _reposted(store, jid, waiting)
    approval = Approval(jid, folder, recorded.route.id, reposted, waited, recorded.changed)
    if approval.changed:
        logger.info(
            "onboarding approved jid=%s folder=%s route=%s%s by=%s waited=%d answering=%s",
            jid,
            folder,
            recorded.route.id,
            "" if recorded.route_added else " (existing)",
            by,
            waited,
            reposted.id if reposted is not None else "nothing",
        )
    return approval


def _repost(store: Store, jid: str, waiting: Waiting | None) -> NewMessage | None:
    """The copy of the newest waiting message that approval posts (None when nothing waited)."""
    if waiting is None:
        return None
    newest = store.get_message(jid, waiting.last_id)
    if newest is None:
        return None
    return newest.copy_as(chat_jid=jid, id=repost_id(newest.seq))  # its sender's: the allowlist applies to it


def _reposted(store: Store, jid: str, waiting: Waiting | None) -> Message | None:
    return None if waiting is None else store.get_message(jid, repost_id(waiting.last_seq))


def reject(store: Store, jid: str, *, by: str, ctx: LayerContext | None = None) -> Entry:
    """Mark ``jid`` rejected: its later messages are skipped and it does not come back on the pending list."""
    ctx = ctx or LayerContext(store, IdleQueue())
    check_jid(jid)
    owner = resolve_owner(ctx, jid)
    if owner.folder is not None:
        raise OnboardingError(f"{jid} belongs to {owner.folder}; remove its route to stop its messages")
    key = ONBOARDING_KEY.format(jid=jid)
    store.set_state(key, "rejected")
    logger.info("onboarding rejected jid=%s by=%s", jid, by)
    entry = get_entry(store, jid)
    assert entry is not None
    return entry


def _iso(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="seconds")
