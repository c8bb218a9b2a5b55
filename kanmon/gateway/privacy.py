"""PII redaction in prompts (issue 16 item 5): the ids of a listed platform's people and chats become pseudonyms.

Opt-in per platform (``privacy.redact: [telegram, …]``). Only the copy the agent reads changes: replies, routing,
sessions and the store keep the real ids. In the input document of a run (:func:`kanmon.gateway.prompt.input_document`):

* a message of a listed platform shows ``sender_id`` as ``user_<16 hex>`` and ``chat_id`` as
  ``<platform>:chat_<16 hex>``; its ``sender`` (the display name) is kept unless ``privacy.redact_names``, then it is
  the sender's pseudonym too; the document's ``chatJid`` and ``sender`` the same way;
* in every text the document carries (the messages, the system messages, attachment names, task prompts, thread and
  message ids) a chat id of a listed platform written out (``telegram:12345``) becomes its pseudonym, and so does each
  real id the batch's messages carry (their senders, the sender a reply quotes, their chats' bare ids) where it stands
  as a word of its own, when it is at least :data:`MIN_TEXT_ID_CHARS` characters long (a shorter one would blank out
  ordinary words and numbers; the structured fields are replaced whatever their length).

A pseudonym is the first 16 hex digits of HMAC-SHA256 keyed with the salt (a secret from the ``secrets:`` section,
named by ``privacy.salt``) over the kind and the id: stable across runs and restarts while the salt stays, distinct
for distinct ids, and without the salt not reversible by hashing every likely id. The salt is never logged, stored or
shown to agents.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Final

from kanmon.container.payload import xml_escape
from kanmon.folders import split_jid

__all__ = ["MIN_SALT_CHARS", "MIN_TEXT_ID_CHARS", "Privacy", "Redactor"]

MIN_SALT_CHARS: Final = 16
MIN_TEXT_ID_CHARS: Final = 4
_DIGITS: Final = 16  # hex digits of a pseudonym: 64 bits, collisions among a gateway's ids are not a concern
# what ends a chat id written in text: whitespace, quotes, markup; a final dot or comma is punctuation, not the id
_JID_TAIL: Final = r"[^\s\"'<>&]*[^\s\"'<>&.,;:!?)\]}]"


@dataclass(frozen=True)
class Privacy:
    """Which platforms' ids are redacted, with what salt, and whether display names go too (``privacy.*``)."""

    platforms: frozenset[str]
    salt: str = field(repr=False)
    names: bool = False

    def __post_init__(self) -> None:
        if len(self.salt) < MIN_SALT_CHARS:
            raise ValueError(f"the salt must be at least {MIN_SALT_CHARS} characters")

    def applies(self, platform: str) -> bool:
        """True when ids of ``platform`` (a JID prefix, ``telegram``) are redacted."""
        return platform in self.platforms

    def user(self, sender: str) -> str:
        """The pseudonym of the sender id ``sender``: ``user_<16 hex>``."""
        return f"user_{self._digest('user', sender)}"

    def chat(self, jid: str) -> str:
        """The pseudonym of the chat ``jid``, keeping its platform: ``telegram:chat_<16 hex>``."""
        platform, _ = split_jid(jid)
        return f"{platform}:{self.bare_chat(jid)}"

    def bare_chat(self, jid: str) -> str:
        """The pseudonym of the chat ``jid`` where its room id stands alone in a text: ``chat_<16 hex>``."""
        return f"chat_{self._digest('chat', jid)}"

    def _digest(self, kind: str, value: str) -> str:
        return _digest(self.salt, kind, value)


@functools.lru_cache(maxsize=4096)
def _digest(salt: str, kind: str, value: str) -> str:
    """The first :data:`_DIGITS` hex digits of HMAC-SHA256(salt, kind NUL value); remembered (an id recurs in every
    message of its chat)."""
    return hmac.new(salt.encode(), f"{kind}\0{value}".encode(), hashlib.sha256).hexdigest()[:_DIGITS]


class Redactor:
    """The redaction of one input document: the batch's real ids, and what each becomes (see the module docstring).

    Built from the ids of the rows of a listed platform (:meth:`know_sender`, :meth:`know_chat`); :meth:`text`
    replaces them, and every chat id of a listed platform, in free text. Without a :class:`Privacy` it changes nothing.
    """

    def __init__(self, privacy: Privacy | None) -> None:
        self._privacy = privacy
        self._words: dict[str, str] = {}
        self._sorted: tuple[str, ...] | None = None
        platforms = sorted(privacy.platforms) if privacy is not None else []
        self._prefixes = tuple(f"{platform}:" for platform in platforms)
        self._jids = (
            re.compile(rf"(?<![\w:])(?:{'|'.join(map(re.escape, platforms))}):{_JID_TAIL}") if platforms else None
        )

    @property
    def active(self) -> bool:
        """True when some platform is redacted at all."""
        return self._privacy is not None

    def applies(self, jid: str) -> bool:
        """True when ids of the chat ``jid``'s platform are redacted."""
        return self._privacy is not None and self._privacy.applies(split_jid(jid)[0])

    def know_sender(self, sender: str | None) -> None:
        """Replace ``sender`` (a platform's user id) wherever it stands alone in the document's texts."""
        if self._privacy is not None and sender:
            self._learn(sender, self._privacy.user(sender))

    def know_chat(self, jid: str | None) -> None:
        """Replace the chat ``jid``'s bare room id wherever it stands alone in the document's texts."""
        if self._privacy is not None and jid:
            self._learn(split_jid(jid)[1], self._privacy.bare_chat(jid))

    def _learn(self, real: str, pseudonym: str) -> None:
        if len(real) >= MIN_TEXT_ID_CHARS:
            self._words.setdefault(real, pseudonym)
            self._sorted = None

    def sender(self, jid: str, sender: str) -> str:
        """The sender id as the agent sees it in the chat ``jid``."""
        return self._privacy.user(sender) if self._privacy is not None and self.applies(jid) else sender

    def name(self, jid: str, sender: str, name: str) -> str:
        """The display name as the agent sees it: kept, unless names are redacted too."""
        if self._privacy is not None and self._privacy.names and self.applies(jid):
            return self._privacy.user(sender)
        return name

    def chat(self, jid: str) -> str:
        """The chat id as the agent sees it."""
        return self._privacy.chat(jid) if self._privacy is not None and self.applies(jid) else jid

    def text(self, text: str) -> str:
        """``text`` with every chat id of a listed platform and every known real id replaced by its pseudonym (a known
        id is found as it is and XML-escaped, so a rendered system message can be redacted too)."""
        privacy = self._privacy
        if privacy is None or not text:
            return text
        if self._jids is not None and any(prefix in text for prefix in self._prefixes):
            text = self._jids.sub(lambda found: privacy.chat(found.group(0)), text)
        # a substring search per id first: most texts hold none, and a regex of every id is slow on long ones
        present = tuple(real for real in self._forms() if real in text)
        if present:
            text = _words(present).sub(lambda found: self._words[found.group(0)], text)
        return text

    def _forms(self) -> tuple[str, ...]:
        """Every known id as it is and XML-escaped, longest first (where two overlap, the longer is what is there)."""
        if self._sorted is None:
            escaped = {xml_escape(real): pseudonym for real, pseudonym in self._words.items()}
            self._words.update({real: pseudonym for real, pseudonym in escaped.items() if real not in self._words})
            self._sorted = tuple(sorted(self._words, key=len, reverse=True))
        return self._sorted


@functools.lru_cache(maxsize=256)
def _words(reals: tuple[str, ...]) -> re.Pattern[str]:
    """A pattern of ``reals``, each as a word of its own, in the order given."""
    return re.compile("|".join(map(_word, reals)))


def _word(real: str) -> str:
    """``real`` as a word of its own: not inside a longer run of letters, digits and ``_``."""
    before = r"(?<!\w)" if re.match(r"\w", real[0]) else ""
    after = r"(?!\w)" if re.match(r"\w", real[-1]) else ""
    return f"{before}{re.escape(real)}{after}"
