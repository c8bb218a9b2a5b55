"""Keeping secrets out of log lines (SPEC §14: secrets never in logs), whatever the level and whoever logs.

Every line gated writes goes through :class:`kanmon.gated.logs.LogFormatter`, which passes its text through
:func:`redact`. Two nets, both needed:

* **Shapes.** What looks like a credential is blanked whatever its value: a query parameter or ``key=value`` whose
  name says token, secret, key, password, auth or credential (``?token=…`` in uvicorn's access log,
  ``access_token``, ``api_key``); the value of an ``Authorization`` header in any notation (``Authorization: Basic
  …``, ``(b'authorization', b'Bearer …')``); a ``Bearer …`` value; a JSON or dict entry with such a name.
* **Known values.** Every secret kanmon knows is blanked wherever it appears, even where nothing hints at it (an
  adapter that echoes the channel secret in an error answer, which lands in a warning): the channel secret, the
  secrets given to agents and the database password (registered by whoever receives them), and the tokens kanmon
  issues or accepts while it runs (by the web layer). Each is also looked for in the forms a line may carry it:
  JSON-escaped, ``repr``-escaped and percent-encoded.

:data:`SECRETS` holds the known values, most recently used last; past :data:`MAX_SECRETS` the longest unused is
forgotten (a token rotated long ago). Values shorter than :data:`MIN_SECRET_CHARS` are not remembered: they would
blank out ordinary words, and no secret worth the name is that short.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from typing import Any, Final
from urllib.parse import quote, quote_plus

__all__ = ["MAX_SECRETS", "MIN_SECRET_CHARS", "REDACTED", "SECRETS", "SecretValues", "redact", "remember", "scrub"]

REDACTED: Final = "[redacted]"
MIN_SECRET_CHARS: Final = 4
MAX_SECRETS: Final = 1024

_NOT_DONE = rf"(?!{re.escape(REDACTED)})"  # a value blanked already is left alone: redacting twice changes nothing
# a name that says it holds a credential: token, access_token, api-key, client_secret, Password, X-Auth-Token, …
_NAME = r"[\w.-]*(?:token|secret|passw(?:or)?d|pwd|key|auth|credential|signature)[\w.-]*"
_SCHEMES = r"bearer|basic|digest|token|negotiate|ntlm|dpop|mac|hoba|mutual|aws4-hmac-sha256"
_WORDS = r"[^\s'\",;)\]}]+(?:[ \t]+[^\s'\",;)\]}]+)*"  # a header value: words, up to a quote or separator
_QUOTED = r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'"
_PATTERNS: Final = (
    # Authorization: Bearer x / authorization=x / ('authorization', 'Basic x') / {"Authorization": "x"}: a well-known
    # scheme is kept (atomically: it is never taken for the value), the rest of the value up to a delimiter blanked
    re.compile(
        rf"(?P<keep>(?:proxy-)?authorization['\"]?\s*(?:[:=]|,)\s*b?['\"]?(?>(?:{_SCHEMES})\s+(?=[^\s'\",;])|))"
        rf"{_NOT_DONE}{_WORDS}",
        re.IGNORECASE,
    ),
    # a Bearer value anywhere
    re.compile(rf"(?P<keep>\bbearer\s+){_NOT_DONE}[^\s'\",;)\]}}]+", re.IGNORECASE),
    # {"token": "x"} / {'api_key': 'x'}
    re.compile(rf"(?P<keep>(?P<q>['\"]){_NAME}(?P=q)\s*:\s*){_NOT_DONE}(?:{_QUOTED})", re.IGNORECASE),
    # ?token=x / &client_secret=x / token="x y" (a query string, a key=value field)
    re.compile(rf"(?P<keep>(?<![\w.-]){_NAME}=){_NOT_DONE}(?:{_QUOTED}|[^\s&#;,'\"<>)\]}}]+)", re.IGNORECASE),
)
_SECRET_NAME: Final = re.compile(_NAME, re.IGNORECASE)


class SecretValues:
    """A registry of secret values to blank out of log lines; thread-safe (tokens arrive from worker threads)."""

    def __init__(self, limit: int = MAX_SECRETS) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._values: OrderedDict[str, None] = OrderedDict()
        self._forms: tuple[str, ...] = ()  # every form of every value, longest first

    def add(self, value: str) -> None:
        """Remember ``value`` (a no-op for values under :data:`MIN_SECRET_CHARS` characters)."""
        if len(value) < MIN_SECRET_CHARS:
            return
        with self._lock:
            if value in self._values:
                self._values.move_to_end(value)
                return
            self._values[value] = None
            while len(self._values) > self._limit:
                self._values.popitem(last=False)
            forms = {form for known in self._values for form in _forms(known) if len(form) >= MIN_SECRET_CHARS}
            self._forms = tuple(sorted(forms, key=len, reverse=True))

    def redact(self, text: str) -> str:
        """``text`` with every form of every remembered value replaced by :data:`REDACTED`."""
        forms = self._forms
        present = [form for form in forms if form in text]  # a substring search per form: no regex for most lines
        if not present:
            return text
        # longest first: where two overlap, the longer is what is there
        return re.sub("|".join(map(re.escape, present)), REDACTED, text)


def _forms(value: str) -> set[str]:
    """The ways ``value`` may be written in a line: as is, JSON- and repr-escaped, percent-encoded."""
    return {
        value,
        json.dumps(value, ensure_ascii=False)[1:-1],
        json.dumps(value)[1:-1],
        repr(value)[1:-1],
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
    }


SECRETS = SecretValues()


def remember(value: str) -> None:
    """Add ``value`` to the process's known secrets (:data:`SECRETS`): no log line will show it from now on."""
    SECRETS.add(value)


def redact(text: str) -> str:
    """``text`` with credential-shaped values and every known secret replaced by :data:`REDACTED`."""
    for pattern in _PATTERNS:
        text = pattern.sub(lambda found: found.group("keep") + REDACTED, text)
    return SECRETS.redact(text)


def scrub(value: Any) -> Any:
    """A structured value (an ``extra=`` field) with its text redacted and entries named like credentials blanked.

    Strings are passed through :func:`redact`; dicts, lists and tuples are walked; numbers, booleans and ``None`` are
    kept; anything else becomes its redacted ``str``.
    """
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {key: REDACTED if is_secret_name(key) else scrub(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        items = [scrub(item) for item in value]
        return tuple(items) if isinstance(value, tuple) else items
    return redact(str(value))


def is_secret_name(name: object) -> bool:
    """Whether a field called ``name`` holds a credential by its name (``token``, ``api_key``, ``Authorization``)."""
    return isinstance(name, str) and _SECRET_NAME.fullmatch(name) is not None
