"""Lanes, the unit the queue serialises (SPEC §2), and the closed set of results a run reports back (SPEC §9).

A chat JID's lane is its group folder: every chat of one folder shares the folder's files and session, so their runs
take turns (arizuko keyed its queue by JID and ran two containers on one folder at once). A ``web:`` JID's lane is
``(folder, topic)``: web topics are separate conversations with separate sessions, so they run in parallel. The
group's own sessions, the default topic ``''`` and the ``#name`` topics of the prefix and sticky layers (SPEC §6),
are shared by every chat of the folder, the web chat too, so they run in the folder's lane from any chat.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Lane", "LaneResult", "lane_for"]

_WEB_PLATFORM = "web"
_SHARED_TOPIC = "#"  # the prefix of the group's named sessions (SPEC §6.1–6.3); no web topic id starts with it


@dataclass(frozen=True, slots=True, order=True)
class Lane:
    """One serial line of runs: a whole group folder (``topic`` None) or one web topic of a folder."""

    folder: str
    topic: str | None = None

    def __str__(self) -> str:
        return self.folder if self.topic is None else f"{self.folder}#{self.topic}"


def lane_for(folder: str, chat_jid: str, topic: str = "") -> Lane:
    """The lane of a message of ``chat_jid`` routed to ``folder``: per topic for ``web:`` JIDs, per folder otherwise.

    A web chat's default topic ``''`` is the folder's own session ``(folder, '')``, the one its other chats use, and a
    ``#name`` topic is the session ``(folder, '#name')`` that ``#name …`` and ``#name`` reach from any chat: both run
    in the folder's lane, because two runs must never resume one session at the same time.
    """
    platform, _, _room = chat_jid.partition(":")
    if platform == _WEB_PLATFORM and topic and not topic.startswith(_SHARED_TOPIC):
        return Lane(folder, topic)
    return Lane(folder)


class LaneResult(enum.StrEnum):
    """How a run ended, as far as the queue cares: whether and when to run the lane again."""

    #: The batch is done (success, or an error after output was delivered): the cursor moved, nothing to retry.
    OK = "ok"
    #: An error without output: the cursor stayed, so the same batch is retried after a backoff (SPEC §8).
    RETRY = "retry"
    #: A failure that retrying cannot fix (the group is gone, say): dead-letter the batch now.
    DEAD = "dead"
    #: Ended by ``/stop``: the cursor moved, never retried.
    STOPPED = "stopped"
    #: Nothing ran: the runtime is unreachable (the Docker engine is down). The lane tries again later, and the
    #: wait counts as no attempt: an outage must not dead-letter the messages that arrive during it.
    DEFERRED = "deferred"
