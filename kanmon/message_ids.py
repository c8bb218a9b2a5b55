"""The message ids gated derives for the rows it writes itself, and the namespace nobody else may store ids in.

A message id is unique within its chat (``(chat_jid, id)``), and gated finds its own rows again by id, so that a
batch read twice is answered once: the answer to command ``42`` is ``gw-reply-42``, a run's replies are
``run-<run>-<n>``, a scheduled task's occurrence is ``task:<id>:<instant>``. A row someone else stored under such an
id first would be taken for gated's own (the command "already answered", the occurrence fired) or fail gated's
insert. So every id gated derives starts with one of :data:`DERIVED_PREFIXES` (:func:`derived_id` builds them), and
an id from outside that :func:`is_derived` recognises is refused where it comes in: ``POST /v1/messages`` (422) and
``gated send --id``. Ids gated makes up without deriving them (the store's uuid4 hex) need no namespace.

The forms are the ones gated always wrote, so rows stored before are still found: a re-read batch is not answered
twice after an upgrade.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DERIVED_PREFIXES", "derived_id", "derived_id_problem", "is_derived"]

#: The prefixes of the ids gated derives (``gw-``: command answers, dead-letter apologies, and the copies of ``/new``'s
#: text that older versions posted; ``run-``: replies and agents' sends; ``task:``: task occurrences; ``api-``: OpenAI
#: API requests; the rest one kind each).
DERIVED_PREFIXES: Final[tuple[str, ...]] = (
    "api-",
    "budget-",
    "dlg-",
    "fwd-",
    "gw-",
    "onboard-",
    "pair-",
    "reset-",
    "run-",
    "task:",
)


def derived_id(prefix: str, *parts: object, sep: str = "-") -> str:
    """``prefix`` (one of :data:`DERIVED_PREFIXES`) followed by ``parts`` joined with ``sep``: ``derived_id("gw-",
    "reply", 42)`` is ``gw-reply-42``. Raises ValueError for another prefix (a new kind of id must be reserved)."""
    if prefix not in DERIVED_PREFIXES:
        raise ValueError(f"{prefix!r} is not a prefix of derived message ids (kanmon.message_ids.DERIVED_PREFIXES)")
    return prefix + sep.join(str(part) for part in parts)


def is_derived(message_id: str) -> bool:
    """True when ``message_id`` is in the namespace of the ids gated derives."""
    return message_id.startswith(DERIVED_PREFIXES)


def derived_id_problem(message_id: str) -> str | None:
    """Why a message may not come in with ``message_id`` (one line), or None when it may."""
    if not is_derived(message_id):
        return None
    return (
        f"{message_id!r} is an id kanmon derives for its own messages: ids starting with "
        f"{', '.join(DERIVED_PREFIXES)} are reserved; use another (the platform's own id, say)"
    )
