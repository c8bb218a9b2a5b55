"""An example kanmon hook plugin (docs/hooks.md): an audit trail of what the gateway does, and a private marker.

* Every lifecycle event is appended as one JSON line to the file ``KANMON_AUDIT_LOG`` names (default
  ``kanmon-audit.jsonl`` in gated's working directory).
* A message that starts with ``#private`` is dropped before any agent sees it (stored, marked done, never answered).
* Each run's prompt gets a system message saying that runs are audited, and its agent the variable
  ``KANMON_AUDITED=1``.

Load it with ``hooks: {modules: [audit_hooks]}`` in kanmon.yaml, this directory on ``PYTHONPATH``; ``gated hooks
list`` shows it. It runs on threads of its own (kanmon's), so a slow disk never slows the gateway down; the lock
keeps lines whole when two hooks write at once.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kanmon.gateway.hooks import Drop, RunExtras, hookimpl
from kanmon.store import Group, Message, Run, Task

PRIVATE = "#private"
_lock = threading.Lock()


def _audit(event: str, **fields: Any) -> None:
    line = json.dumps({"at": datetime.now(UTC).isoformat(), "event": event, **fields}, default=str)
    with _lock, Path(os.environ.get("KANMON_AUDIT_LOG", "kanmon-audit.jsonl")).open("a", encoding="utf-8") as log:
        log.write(line + "\n")


@hookimpl
def message_routed(message: Message, folder: str) -> Drop | None:
    if message.content.startswith(PRIVATE):
        _audit("dropped", seq=message.seq, chat=message.chat_jid, folder=folder)
        return Drop()
    return None


@hookimpl
def run_starting(run_id: str, group: Group) -> RunExtras:
    _audit("run_starting", run=run_id, folder=group.folder)
    return RunExtras(env={"KANMON_AUDITED": "1"}, notes=[f"Runs of {group.folder} are audited."])


@hookimpl
def run_finished(run: Run, status: str, error: str | None, outputs: int) -> None:
    _audit("run_finished", run=run.id, folder=run.group_folder, status=status, error=error, outputs=outputs)


@hookimpl
def session_reset(folder: str, topic: str, reason: str) -> None:
    _audit("session_reset", folder=folder, topic=topic, reason=reason)


@hookimpl
def delivery_failed(message: Message, error: str, final: bool) -> None:
    _audit("delivery_failed", seq=message.seq, chat=message.chat_jid, error=error, final=final)


@hookimpl
def dead_letter(folder: str, chat_jid: str, messages: Sequence[Message]) -> None:
    _audit("dead_letter", folder=folder, chat=chat_jid, seqs=[message.seq for message in messages])


@hookimpl
def task_fired(task: Task, stored: int) -> None:
    _audit("task_fired", task=task.id, folder=task.group_folder, stored=stored)
