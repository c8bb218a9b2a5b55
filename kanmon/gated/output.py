"""``--json`` for every command that lists or shows (issue 18): one option, one printer, one shape per record.

Field names are stable and documented in docs/cli-json.md (each command's shape, tested against a JSON Schema in
tests/unit/gated/test_cli_json.py). Times are ISO 8601 in UTC (``2026-11-30T12:00:00+00:00``), null when unknown;
a list command prints a JSON array (empty when there is nothing), a show command one object.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from kanmon.store import Message, Run

__all__ = ["emit_json", "iso", "json_option", "message_json", "run_json"]

F = TypeVar("F", bound=Callable[..., Any])


def json_option(fn: F) -> F:
    """The ``--json`` flag, passed to the command as ``as_json``."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead (shapes: docs/cli-json.md).")(fn)


def emit_json(value: Any) -> None:
    """Print ``value`` as indented JSON (UTF-8 as is, not escaped)."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def iso(moment: dt.datetime | None) -> str | None:
    """``moment`` as ISO 8601 in UTC, or None."""
    return None if moment is None else moment.astimezone(dt.UTC).isoformat()


def run_json(run: Run) -> dict[str, Any]:
    """A run (a ``session_log`` row): ``id``, ``group``, ``chat_jid``, ``topic``, ``status``, ``instance``,
    ``runtime``, ``container``, ``session_id``, ``first_seq``/``last_seq`` (its batch), ``message_count``,
    ``output_count``, ``started_at``, ``ended_at``, ``seconds`` (null while in flight) and ``error``."""
    ended = run.ended_at
    return {
        "id": run.id,
        "group": run.group_folder,
        "chat_jid": run.chat_jid,
        "topic": run.topic,
        "status": run.status,
        "instance": run.instance,
        "runtime": run.runtime,
        "container": run.container,
        "session_id": run.session_id,
        "first_seq": run.first_seq,
        "last_seq": run.last_seq,
        "message_count": run.message_count,
        "output_count": run.output_count,
        "started_at": iso(run.started_at),
        "ended_at": iso(ended),
        "seconds": None if ended is None else round((ended - run.started_at).total_seconds(), 3),
        "error": run.error,
    }


def message_json(message: Message) -> dict[str, Any]:
    """A stored message: ``seq``, ``id``, ``chat_jid``, ``direction`` (in, out), ``sender``, ``sender_name``,
    ``topic``, ``verb``, ``content``, ``received_at``; inbound: ``status`` (new, done, dead, skipped) and
    ``routed_folder``; outbound: ``run_id``, ``delivery_status`` (pending, sent, failed, or null when read from the
    store by its channel), ``delivery_attempts`` and ``delivery_error`` (null where they do not apply)."""
    return {
        "seq": message.seq,
        "id": message.id,
        "chat_jid": message.chat_jid,
        "direction": message.direction,
        "sender": message.sender,
        "sender_name": message.sender_name,
        "topic": message.topic,
        "verb": message.verb,
        "content": message.content,
        "received_at": iso(message.received_at),
        "status": message.status,
        "routed_folder": message.routed_folder,
        "run_id": message.run_id,
        "delivery_status": message.delivery_status,
        "delivery_attempts": message.delivery_attempts,
        "delivery_error": message.delivery_error,
    }
