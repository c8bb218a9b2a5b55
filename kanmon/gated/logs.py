"""Logging setup for gated: one handler on the root logger, in plain text for people or JSON lines for machines.

Log lines carry structured fields: the ids of the run, chat, delivery or task they are about, bound where that work
begins (:mod:`kanmon.logcontext`: ``run_id``, ``lane``, ``chat``, ``folder``, ``attempt``, ``task``, ``channel``),
and whatever a call passes with the standard ``extra=`` argument (``logger.info("run finish", extra={"result":
"ok"})``). In JSON they become top-level keys, so a log pipeline can filter on them; in text they are appended as
``key=value``, each once (a call's own value wins over a bound one). Times are UTC with milliseconds, so lines from
several hosts sort together. Only the standard library is used: logging must work before anything else can.

In JSON mode every line is JSON, uvicorn's access log included (:class:`AccessLogFields` turns its lines into
``method``/``path``/``status``/``client`` fields); in text mode level names are coloured only when the stream is a
terminal (never in a file or a pipe, nor with ``NO_COLOR`` set). :func:`log_format` says which mode is on, for the
few places that would otherwise print a plain line (gated's "stopping" notice, a command's error).

No secret reaches a line (SPEC §14), at any level and from any logger (uvicorn's access log prints query strings at
DEBUG): the formatter passes the message, every ``extra=`` field and the traceback through :mod:`kanmon.redaction`,
which blanks credential-shaped values and every secret value kanmon knows.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterable
from typing import Any, Final, Literal, TextIO

from kanmon.logcontext import fields
from kanmon.redaction import REDACTED, is_secret_name, redact, remember, scrub

__all__ = ["AccessLogFields", "LogFormatter", "configure_logging", "log_format"]

HANDLER_NAME: Final = "kanmon"
ACCESS_LOGGER: Final = "uvicorn.access"
# libraries whose INFO lines (a line per HTTP request, per Docker API call) would drown gated's own
# (gated says itself where it serves HTTP; uvicorn's "running on"/"started"/"shutting down" lines add nothing)
NOISY_LOGGERS: Final = ("urllib3", "docker", "asyncio", ACCESS_LOGGER, "uvicorn.error", "alembic")

# the attributes every LogRecord has; anything else on a record came from ``extra=``
_STANDARD: Final = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
# ANSI colours of the level names on a terminal
_COLOURS: Final = {"DEBUG": "\x1b[2m", "WARNING": "\x1b[33m", "ERROR": "\x1b[31m", "CRITICAL": "\x1b[1;31m"}
_RESET: Final = "\x1b[0m"
_ACCESS_ARGS: Final = 5  # uvicorn's access line: client, method, path with query, HTTP version, status

_format: Literal["text", "json"] | None = None  # what configure_logging set up last


def _timestamp(record: logging.LogRecord) -> str:
    """``2026-11-29T18:00:00.123Z``: ISO 8601, UTC, milliseconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _text_value(value: Any) -> str:
    # quote only what would make the key=value list ambiguous, so the common case stays readable
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


class LogFormatter(logging.Formatter):
    """Formats a record as one text line or one JSON object, with its context ids and ``extra=`` fields, secrets
    redacted; ``colour`` colours text lines' level names (for a terminal)."""

    def __init__(self, fmt: Literal["text", "json"] = "text", *, colour: bool = False) -> None:
        super().__init__()
        if fmt not in ("text", "json"):
            raise ValueError(f"unknown log format {fmt!r}: expected 'text' or 'json'")
        self.fmt = fmt
        self.colour = colour and fmt == "text"

    @staticmethod
    def extras(record: logging.LogRecord) -> dict[str, Any]:
        """The ids bound where the record was made (:mod:`kanmon.logcontext`), then the fields a call passed with
        ``extra=`` (winning over a bound id of the same name), redacted (one named like a credential is blanked)."""
        found = {**fields(), **{key: value for key, value in record.__dict__.items() if key not in _STANDARD}}
        return {key: REDACTED if is_secret_name(key) else scrub(value) for key, value in found.items()}

    def format(self, record: logging.LogRecord) -> str:
        """The whole entry: a text line (traceback on the following lines) or a single JSON line; no secrets."""
        message = redact(record.getMessage())
        exc = redact(self._exception(record))
        if self.fmt == "json":
            return self._json(record, message, exc)
        level = record.levelname
        if self.colour and level in _COLOURS:
            level = f"{_COLOURS[level]}{level}{_RESET}"
        line = f"{_timestamp(record)} {level} {record.name}: {message}"
        line += "".join(f" {key}={_text_value(value)}" for key, value in self.extras(record).items())
        # once more as a whole: a secret split between the parts, or escaped by the quoting of a value
        return redact(f"{line}\n{exc}" if exc else line)

    def _exception(self, record: logging.LogRecord) -> str:
        parts: list[str] = []
        if record.exc_info and not record.exc_text:  # cached on the record, as the base Formatter does
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        return "\n".join(parts)

    def _json(self, record: logging.LogRecord, message: str, exc: str) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        for key, value in self.extras(record).items():
            entry.setdefault(key, value)  # an extra field may not overwrite the four every line has
        if exc:
            entry["exc"] = exc
        # extras are redacted as structures before they are encoded (an escaped secret is no longer the secret);
        # default: a field that is not JSON (a Path, a datetime) must not lose the whole line
        return json.dumps(entry, ensure_ascii=False, default=lambda value: redact(str(value)))


class AccessLogFields(logging.Filter):
    """uvicorn's access line (``'%s - "%s %s HTTP/%s" %d'``) as kanmon's: the message ``GET /path?q 200`` and the
    fields ``method``, ``path``, ``status``, ``client``; the formatter then redacts the path's credentials
    (``?token=…`` on the web chat's event stream) in the message and the field alike. Other records pass unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite an access record in place; always keep it."""
        args = record.args
        if isinstance(args, tuple) and len(args) == _ACCESS_ARGS:
            client, method, path, _version, status = args
            record.msg, record.args = "%s %s %s", (method, path, status)
            record.method, record.path, record.status, record.client = method, path, status, client
        return True


def log_format() -> Literal["text", "json"] | None:
    """The format :func:`configure_logging` set up last (``None`` before): ``json`` means no plain line may be
    written to standard error."""
    return _format


def configure_logging(
    level: str,
    fmt: Literal["text", "json"],
    stream: TextIO | None = None,
    *,
    secrets: Iterable[str] = (),
    access: bool = False,
) -> None:
    """Log at ``level`` (a name such as ``INFO``) in ``fmt`` to ``stream`` (standard error by default); with
    ``access`` (``log.access``) every HTTP request too, at INFO (at DEBUG they are logged anyway).

    ``secrets`` (configured passwords, the channel secret) join the values no line will ever show
    (:func:`kanmon.redaction.remember`); raises ``ValueError`` for an unknown level or format.

    Calling it again replaces the handler it installed, so lines are never written twice; handlers others
    added to the root logger are left alone.
    """
    levels = logging.getLevelNamesMapping()
    number = levels.get(level.upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}")
    global _format
    stream = sys.stderr if stream is None else stream
    formatter = LogFormatter(fmt, colour=_is_terminal(stream))  # refuses a bad format before anything changes
    for secret in secrets:
        remember(secret)
    handler = logging.StreamHandler(stream)
    handler.set_name(HANDLER_NAME)
    handler.setLevel(number)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(number)
    # at DEBUG the libraries speak too: whoever asks for DEBUG is chasing something and may need them
    quiet = logging.NOTSET if number <= logging.DEBUG else logging.WARNING
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
    requests = logging.getLogger(ACCESS_LOGGER)
    requests.handlers.clear()  # an earlier uvicorn.Config(access_log=False) in this process cut it off: rejoin root
    requests.propagate = True
    if access:
        requests.setLevel(logging.NOTSET)
    if not any(isinstance(f, AccessLogFields) for f in requests.filters):
        requests.addFilter(AccessLogFields())
    _format = fmt


def _is_terminal(stream: TextIO) -> bool:
    """Whether lines written to ``stream`` reach a terminal that shows colours (https://no-color.org: not with
    ``NO_COLOR`` set)."""
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a stream without isatty, or closed
        return False
