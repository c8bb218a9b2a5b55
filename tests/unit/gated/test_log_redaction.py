"""The log formatter keeps secrets out of every line (SPEC §14), text and JSON, message, extras and tracebacks alike.

Two nets: what looks like a credential (a query parameter or key named like a token, secret, key or password, an
``Authorization`` header, a ``Bearer`` value) is blanked whatever its value; and every secret value kanmon knows
(the channel secret, the agents' secrets, the tokens it issues) is blanked wherever it appears, in any form a line
may carry it (as is, JSON- or repr-escaped, percent-encoded).
"""

from __future__ import annotations

import json
import logging
import string
import sys
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kanmon import redaction
from kanmon.gated.logs import LogFormatter
from kanmon.redaction import REDACTED, SecretValues

FORMATS = st.sampled_from(["text", "json"])
MARK = "\N{SECTION SIGN}MARK\N{SECTION SIGN}"


@pytest.fixture(autouse=True)
def own_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A registry of this test's own: the process-wide one is left as it was."""
    monkeypatch.setattr(redaction, "SECRETS", SecretValues())
    yield


def remember_only(value: str) -> None:
    """Each example starts from an empty registry (the fixture puts the process's back at the end)."""
    redaction.SECRETS = SecretValues()
    redaction.remember(value)


def record(message: str, args: Any = (), extra: dict[str, Any] | None = None, exc: str | None = None) -> Any:
    exc_info = None
    if exc is not None:
        try:
            raise RuntimeError(exc)
        except RuntimeError:
            exc_info = sys.exc_info()
    made = logging.getLogger("kanmon.test").makeRecord(
        "kanmon.test", logging.DEBUG, __file__, 1, message, args, exc_info, extra=extra
    )
    return made


Emit = Callable[[str], Any]
# every place a value can reach a line through: the message, its arguments, extra fields (nested too), a traceback
PLACES: dict[str, Emit] = {
    "message": lambda v: record(f"got {v} here"),
    "argument": lambda v: record("got %s here (%r)", (v, v)),
    "uvicorn access": lambda v: record('%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5", "GET", v, "1.1", 200)),
    "extra": lambda v: record("with extras", extra={"detail": v, "n": 1}),
    "nested extra": lambda v: record("with extras", extra={"request": {"headers": [("x", v)], "ok": True}}),
    "exception": lambda v: record("failed", exc=f"boom: {v}"),
}


def formatted(fmt: str, made: Any) -> str:
    made.exc_text = None  # a fresh formatting each time, as a new record would get
    return LogFormatter(fmt).format(made)  # type: ignore[arg-type]


def assert_hidden(value: str, forms: list[str], fmt: str, place: str) -> None:
    emit = PLACES[place]
    baseline = formatted(fmt, emit(MARK))
    # a value that the line holds anyway (the logger's name, a piece of "[redacted]") cannot be told apart
    assume(all(form not in baseline and form not in REDACTED for form in forms))
    line = formatted(fmt, emit(value))
    for form in forms:
        assert form not in line, (form, line)
    if fmt == "json":
        json.loads(line)  # still one valid JSON document


# ------------------------------------------------------------------------------------------------ known values
SECRET_TEXT = st.text(st.characters(exclude_categories=["Cs"]), min_size=8, max_size=40)


@settings(max_examples=300, deadline=None)
@given(secret=SECRET_TEXT, fmt=FORMATS, place=st.sampled_from(sorted(PLACES)), encoded=st.booleans())
def test_a_known_secret_never_reaches_a_line_in_any_form(secret: str, fmt: str, place: str, encoded: bool) -> None:
    remember_only(secret)
    shown = quote(secret, safe="") if encoded else secret
    escaped = json.dumps(secret, ensure_ascii=False)[1:-1]
    forms = [secret, escaped, json.dumps(secret)[1:-1], repr(secret)[1:-1], quote(secret, safe=""), quote_plus(secret)]
    assert_hidden(shown, forms, fmt, place)


TOKENS = st.text(string.ascii_letters + string.digits + "-_", min_size=12, max_size=64)


@settings(max_examples=200, deadline=None)
@given(token=TOKENS, fmt=FORMATS, place=st.sampled_from(sorted(PLACES)))
def test_issued_tokens_are_hidden_even_in_lines_that_do_not_look_like_credentials(
    token: str, fmt: str, place: str
) -> None:
    remember_only(token)
    assert_hidden(f"/x/{token}/y", [token], fmt, place)


def test_values_too_short_to_be_secrets_are_not_remembered_and_forgotten_ones_are_not_hidden() -> None:
    redaction.remember("")
    redaction.remember("abc")
    assert redaction.redact("abc and abc") == "abc and abc"
    registry = SecretValues(limit=2)
    for value in ("first-secret", "second-secret", "third-secret"):
        registry.add(value)
    registry.add("second-secret")  # used again: the most recent now
    registry.add("fourth-secret")
    assert registry.redact("first-secret second-secret third-secret fourth-secret") == (
        f"first-secret {REDACTED} third-secret {REDACTED}"
    )


# ------------------------------------------------------------------------------------------------ credential shapes
CREDENTIAL_SHAPES = [
    "GET /web/corp/stream?topic=t&token={t} HTTP/1.1",
    "GET /web/corp/stream?token={t}&topic=t HTTP/1.1",
    "/cb?access_token={t}",
    "/x?api_key={t}&a=1",
    "/x?client_secret={t}",
    "/x?Password={t}#frag",
    "/x?refresh-token={t};q=1",
    "https://h/cb#access_token={t}&state=x",
    "Authorization: Bearer {t}",
    "authorization: {t}",
    "Proxy-Authorization: Basic {t}",
    "bearer {t}",
    "(b'authorization', b'Bearer {t}')",
    "[('Authorization', 'Bearer {t}'), ('Accept', '*/*')]",
    '{{"token": "{t}", "ok": true}}',
    "{{'channel_secret': '{t}'}}",
    'headers={{"X-Api-Key": "{t}"}}',
    "token={t}",
    'password="{t}"',
]


@settings(max_examples=400, deadline=None)
@given(
    token=TOKENS | st.text(string.ascii_letters + string.digits + "-._~+/%", min_size=12).map(lambda t: t + "=="),
    shape=st.sampled_from(CREDENTIAL_SHAPES),
    fmt=FORMATS,
    place=st.sampled_from(sorted(PLACES)),
)
def test_what_looks_like_a_credential_is_hidden_whatever_its_value(
    token: str, shape: str, fmt: str, place: str
) -> None:
    # nothing remembered: the shape alone gives it away
    assert_hidden(shape.format(t=token), [token], fmt, place)


@settings(max_examples=100, deadline=None)
@given(token=TOKENS, fmt=FORMATS, name=st.sampled_from(["token", "api_key", "Secret", "password", "authorization"]))
def test_extra_fields_named_like_credentials_are_hidden(token: str, fmt: str, name: str) -> None:
    line = formatted(fmt, record("with extras", extra={name: token, "lane": "corp"}))
    assume(token not in formatted(fmt, record("with extras", extra={name: MARK, "lane": "corp"})))
    assert token not in line and REDACTED in line and "corp" in line


@pytest.mark.parametrize(
    "text",
    [
        "run finish lane=corp run_id=20261130-ab12 result=ok duration=0.27s",
        "routed seq=3 chat=web:corp layer=routing decision=Forward why=web: chats go to their own folder corp",
        '127.0.0.1:5 - "GET /web/corp/stream?topic=t-1&after=12 HTTP/1.1" 200',
        "delivery of seq=2 to telegram:1 via tg: adapter tg answered 503: overloaded",
        "unknown adapter token: it was rotated or the adapter deregistered; register again",
    ],
)
def test_ordinary_lines_are_left_as_they_are(text: str) -> None:
    assert redaction.redact(text) == text
    assert LogFormatter("text").format(record(text)).endswith(text)
