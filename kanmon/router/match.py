"""The match language of a route (SPEC §6.4): space-separated ``key=glob`` terms that must all hold.

- A term is split at its first ``=``, so a glob may itself contain ``=``.
- Tokens without ``=``, or with an empty key, are ignored; an empty match is a wildcard.
- Keys: ``platform`` and ``room`` (the JID split at its first ``:``), ``chat_jid``, ``sender`` and ``verb`` (an absent
  verb is ``message``). Any other key sees ``""``, so only a glob that accepts the empty string (``*``, or nothing
  after the ``=``) matches it.
- A malformed glob never matches, so a route holding one never matches anything.

That leniency is for matching routes already stored. A route being written goes through :func:`check_match`, which
refuses what could never work as meant: a token without ``=`` (it would be ignored, leaving a catch-all), an empty or
unknown key (it would test ``""`` and so never match), an empty glob on a key that is never empty, a malformed glob.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from kanmon.errors import closest_name
from kanmon.folders import split_jid
from kanmon.router.errors import GlobError, RouteError
from kanmon.router.glob import Glob, compile_glob

__all__ = ["KEYS", "MatchExpr", "MessageFields", "Term", "TermResult", "check_match", "parse_match"]

KEYS = ("platform", "room", "chat_jid", "sender", "verb")
NEVER_EMPTY = frozenset({"chat_jid", "verb"})  # a stored JID has a ':'; an absent verb is "message"
DEFAULT_VERB = "message"


@dataclass(frozen=True, slots=True)
class MessageFields:
    """The parts of a message a route can test."""

    chat_jid: str
    sender: str = ""
    verb: str = DEFAULT_VERB

    def value(self, key: str) -> str:
        """The value ``key`` tests: a JID part, the sender, the verb (``message`` when absent), or ``""``."""
        if key == "platform":
            return split_jid(self.chat_jid)[0]
        if key == "room":
            return split_jid(self.chat_jid)[1]
        if key == "chat_jid":
            return self.chat_jid
        if key == "sender":
            return self.sender
        if key == "verb":
            return self.verb or DEFAULT_VERB
        return ""


@dataclass(frozen=True, slots=True)
class Term:
    """One ``key=glob`` term; ``glob`` is None when the text is malformed (``error`` says why)."""

    key: str
    pattern: str
    glob: Glob | None
    error: GlobError | None

    @property
    def text(self) -> str:
        """The term as written."""
        return f"{self.key}={self.pattern}"

    def test(self, fields: MessageFields) -> TermResult:
        """Evaluate this term against a message."""
        value = fields.value(self.key)
        matched = self.glob is not None and self.glob.match(value)
        return TermResult(self, value, matched)


@dataclass(frozen=True, slots=True)
class TermResult:
    """The outcome of one term on one message, with enough to explain it."""

    term: Term
    value: str
    matched: bool

    def describe(self) -> str:
        """One phrase: ``sender='x' matches 'tg:*'`` or why it does not."""
        term = self.term
        if term.error is not None:
            return f"{term.key}: {term.error}, so it matches nothing"
        verdict = "matches" if self.matched else "does not match"
        known = "" if term.key in KEYS else " (unknown key, always empty)"
        return f"{term.key}={self.value!r}{known} {verdict} {term.pattern!r}"


@dataclass(frozen=True, slots=True)
class MatchExpr:
    """A parsed match: the terms that count, in the order written."""

    source: str
    terms: tuple[Term, ...]

    @property
    def text(self) -> str:
        """The terms as written, one space apart: what :func:`parse_match` reads back into the same terms."""
        return " ".join(term.text for term in self.terms)

    @property
    def is_wildcard(self) -> bool:
        """True when no term counts, so every message matches."""
        return not self.terms

    @property
    def errors(self) -> tuple[tuple[Term, GlobError], ...]:
        """The malformed terms, each with its error."""
        return tuple((term, term.error) for term in self.terms if term.error is not None)

    def evaluate(self, fields: MessageFields) -> Iterator[TermResult]:
        """Yield each term's result, stopping after the first that fails."""
        for term in self.terms:
            result = term.test(fields)
            yield result
            if not result.matched:
                return

    def matches(self, fields: MessageFields) -> bool:
        """True when every term holds for ``fields``."""
        return all(term.test(fields).matched for term in self.terms)


@lru_cache(maxsize=1024)
def parse_match(source: str) -> MatchExpr:
    """Parse a match; never raises (malformed globs become terms that never match)."""
    terms: list[Term] = []
    for token in source.split():
        key, sep, pattern = token.partition("=")
        if not sep or not key:
            continue
        try:
            terms.append(Term(key, pattern, compile_glob(pattern), None))
        except GlobError as exc:
            terms.append(Term(key, pattern, None, exc))
    return MatchExpr(source, tuple(terms))


def check_match(source: str) -> MatchExpr:
    """Parse a match that is about to be stored, refusing what could never work as meant (:class:`RouteError`).

    Every whitespace-separated token must be ``key=glob`` with a key of :data:`KEYS` and a well-formed glob; an
    empty ``source`` is the wildcard. The error is one line naming the term, the problem and the valid keys (with a
    "did you mean" for a misspelled one). SPEC §6.4: these keys, and Go ``path.Match`` globs.
    """
    keys = ", ".join(KEYS)
    for token in source.split():
        key, sep, _ = token.partition("=")
        if not sep:
            raise RouteError(f"match term {token!r} has no '=': terms are key=glob (keys: {keys})")
        if not key:
            raise RouteError(f"match term {token!r} has no key before '=' (keys: {keys})")
        if key not in KEYS:
            close = closest_name(key, KEYS)
            hint = f", did you mean {close}?" if close else ""
            raise RouteError(f"match term {token!r}: unknown key {key!r}{hint} (keys: {keys})")
        if token == f"{key}=" and key in NEVER_EMPTY:
            raise RouteError(f"match term {token!r}: an empty glob matches only an empty {key}, and it never is one")
    expr = parse_match(source)
    if expr.errors:
        term, error = expr.errors[0]
        raise RouteError(f"match term {term.text!r}: {error}")
    return expr
