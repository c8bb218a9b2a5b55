"""Every ``--json`` output of ``gated`` against its JSON Schema, on both backends; docs/cli-json.md names every field;
``gated status`` exits 4 while something wants an operator, 0 otherwise.

The schemas are strict (every field required, none other allowed): a field renamed, removed or added fails here,
and docs/cli-json.md must say what it is.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner, Result

from kanmon.gated.cli import cli
from kanmon.gated.exits import Exit
from kanmon.gated.status_commands import STUCK_GRACE
from kanmon.gateway import IdleQueue, LayerContext
from kanmon.gateway.auth import AuthConfig
from kanmon.gateway.decisions import Layer, Refused
from kanmon.gateway.onboarding import note_unowned
from kanmon.gateway.pairing import on_refused
from kanmon.store import Dispatch, NewMessage, Run, RunEnd, Store
from kanmon.store.lock import StoreLock

Gated = Callable[..., Result]
DOCS = Path(__file__).resolve().parents[3] / "docs" / "cli-json.md"

# ------------------------------------------------------------------------------------------------ the schemas
TIME = {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$"}
STR, INT, NUM, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}


def null(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": list(properties), "properties": properties}


def array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


RUN_STATUS = {"enum": ["starting", "running", "ok", "error", "timeout", "stopped", "reclaimed"]}
RUN = obj(
    id=STR,
    group=STR,
    chat_jid=STR,
    topic=STR,
    status=RUN_STATUS,
    instance=STR,
    runtime=STR,
    container=null(STR),
    session_id=null(STR),
    first_seq=null(INT),
    last_seq=null(INT),
    message_count=INT,
    output_count=INT,
    started_at=TIME,
    ended_at=null(TIME),
    seconds=null(NUM),
    error=null(STR),
)
MESSAGE_FIELDS: dict[str, Any] = {
    "seq": INT,
    "id": STR,
    "chat_jid": STR,
    "direction": {"enum": ["in", "out"]},
    "sender": STR,
    "sender_name": STR,
    "topic": STR,
    "verb": STR,
    "content": STR,
    "received_at": TIME,
    "status": null({"enum": ["new", "done", "dead", "skipped"]}),
    "routed_folder": null(STR),
    "run_id": null(STR),
    "delivery_status": null({"enum": ["pending", "sent", "failed"]}),
    "delivery_attempts": INT,
    "delivery_error": null(STR),
}
TASK = obj(
    id=INT,
    group=STR,
    chat_jid=STR,
    topic=STR,
    prompt=STR,
    kind={"enum": ["cron", "every", "at"]},
    expression=STR,
    schedule=STR,
    timezone=STR,
    missed=STR,
    status=STR,
    reason=null(STR),
    next_fire_at=null(TIME),
    next_fire_local=null(STR),
    last_fire_at=null(TIME),
    fire_count=INT,
    created_by=STR,
    created_at=TIME,
)
GROUP = obj(
    folder=STR,
    name=STR,
    parent=null(STR),
    web_chat=BOOL,
    settings={"type": "object", "required": ["runtime", "command", "env", "secrets", "mounts", "timeout"]},
    defaults=array(STR),
)
NUMBERS = {
    "outputs": INT,
    "input_tokens": INT,
    "output_tokens": INT,
    "cache_read_tokens": INT,
    "cache_write_tokens": INT,
    "cost_usd": NUM,
}
SCHEMAS: dict[str, dict[str, Any]] = {
    "status": obj(
        gated=null(STR),
        store=STR,
        now=TIME,
        counts=obj(
            **{
                name: INT
                for name in (
                    "groups",
                    "routes",
                    "chats",
                    "messages",
                    "poll_cursor",
                    "last_seq",
                    "skipped",
                    "deliveries_pending",
                    "tasks_active",
                )
            }
        ),
        problems=obj(gated_down=INT, dead_letters=INT, deliveries_failed=INT, stuck_runs=INT),
        running=array(
            {**RUN, "required": [*RUN["required"], "stuck"], "properties": {**RUN["properties"], "stuck": BOOL}}
        ),
        held=array(obj(chat_jid=STR, waiting=INT, weight=INT, threshold=INT, fires_at=TIME)),
        waiting=array(obj(chat_jid=STR, waiting=INT, oldest_seq=INT, unrouted=INT)),
        next_tasks=array(TASK),
        usage_today=array(obj(group=STR, day=STR, zone=STR, spent_usd=NUM, budget_usd=null(NUM))),
        recent_runs=array(RUN),
        refused=obj(
            senders=INT,
            messages=INT,
            pending_pairing_codes=INT,
            latest=array(obj(chat_jid=STR, sender=STR, sender_name=STR, count=INT, last_seq=INT, last_at=TIME)),
        ),
    ),
    "runs": array(RUN),
    "run-log": obj(run=RUN, stderr=STR, stdout=STR, recorded_at=null(TIME)),
    "dead": array(obj(**MESSAGE_FIELDS, last_run=null(STR))),
    "dead --retry": obj(retried=array(INT)),
    "replies": array(obj(**MESSAGE_FIELDS)),
    "config show": array(obj(key=STR, value=STR, source=STR, doc=STR)),
    "group list": array(GROUP),
    "group show": GROUP,
    "route list": array(obj(id=INT, seq=INT, match=STR, target=STR, impulse=null({"type": "object"}))),
    "route test": obj(
        owner=obj(folder=null(STR), why=STR),
        lines=array(STR),
        decision=obj(
            kind={"enum": ["forward", "consumed", "builtin", "daemon", "drop", "unowned", "refused", "ignored"]},
            layer=STR,
            why=STR,
            folder=null(STR),
            topic=null(STR),
            content=null(STR),
            name=null(STR),
        ),
    ),
    "onboarding list": array(
        obj(
            chat_jid=STR,
            state={"enum": ["pending", "approved", "rejected"]},
            group=null(STR),
            waited=null(obj(count=INT, first_sender=STR, first_sender_name=STR, first_at=STR, last_at=STR)),
        )
    ),
    "apikey list": array(obj(id=STR, groups=array(STR), name=STR, created_at=TIME)),
    "group web-token --list": array(obj(id=INT, label=STR, created_at=TIME)),
    "hooks list": obj(
        timeout=NUM,
        entry_points=BOOL,
        plugins=array(obj(name=STR, source=STR, hooks=array(STR), error=null(STR))),
    ),
    "task list": array(TASK),
    "task show": TASK,
    "allow list": array(obj(id=INT, pattern=STR, platform=null(STR), group=null(STR), note=STR, added_at=TIME)),
    "pairing list": array(
        obj(
            id=INT,
            status=STR,
            platform=STR,
            sender=STR,
            sender_name=STR,
            chat_jid=STR,
            created_at=TIME,
            expires_at=TIME,
            decided_at=null(TIME),
            decided_by=null(STR),
            group=null(STR),
        )
    ),
    "usage": obj(
        group=null(STR),
        since=null(STR),
        total=obj(**NUMBERS),
        groups=array(obj(folder=STR, timezone=STR, today=STR, spent_today=NUM, daily_budget=null(NUM), **NUMBERS)),
        days=array(obj(day=STR, folder=STR, **NUMBERS)),
        sessions=array(obj(folder=STR, topic=STR, session_id=null(STR), first_day=STR, last_day=STR, **NUMBERS)),
    ),
}


# ------------------------------------------------------------------------------------------------ the world
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'kanmon.db'}"
    return str(request.getfixturevalue("pg_database"))


@pytest.fixture
def gated(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Gated:
    for name in [n for n in os.environ if n.startswith("KANMON_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("KANMON_STORE_URL", store_url)

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), *args], catch_exceptions=False)

    assert run("migrate").exit_code == 0
    return run


@pytest.fixture
def store(gated: Gated, store_url: str) -> Iterator[Store]:
    store = Store.open(store_url)
    yield store
    store.close()


def ok(result: Result, code: int = 0) -> Any:
    assert result.exit_code == code, result.output
    return json.loads(result.output)


def run_record(run_id: str, chat: str, seq: int, *, started: dt.datetime, status: str = "running") -> Run:
    return Run(
        id=run_id,
        instance="elsewhere",
        group_folder="corp",
        topic="",
        chat_jid=chat,
        runtime="process",
        status=status,  # type: ignore[arg-type]
        started_at=started,
        first_seq=seq,
        last_seq=seq,
        message_count=1,
    )


def dead_letter(store: Store, chat: str, text: str) -> int:
    seq = store.put_message(NewMessage(chat_jid=chat, content=text, sender="telegram:7")).message.seq
    store.record_dispatch([Dispatch(seq, "new", "corp", "", None)], seq)
    end = RunEnd(run_id=None, chat_jid=chat, seqs=[seq], rows="dead", run_status="error", folder="corp", topic="")
    store.finish_runs([end], now=dt.datetime.now(dt.UTC))
    return seq


@pytest.fixture
def world(gated: Gated, store: Store) -> Store:
    """Something in every list: groups, routes, tasks, keys, allowlist, pairing, onboarding, runs with logs, dead
    letters, replies and a failed delivery, a held chat's neighbour waiting."""
    assert gated("group", "add", "corp", "--web").exit_code == 0
    assert (
        gated(
            "route", "add", "--match", "platform=telegram", "--target", "corp", "--impulse", '{"threshold": 1}'
        ).exit_code
        == 0
    )
    assert gated("task", "add", "corp", "--every", "1h", "--prompt", "report").exit_code == 0
    assert gated("allow", "add", "telegram:7", "--platform", "telegram", "--note", "a friend").exit_code == 0
    assert gated("apikey", "add", "--group", "corp", "--name", "ci").exit_code == 0
    now = dt.datetime.now(dt.UTC)
    stranger = store.put_message(NewMessage(chat_jid="telegram:99", content="hi", sender="telegram:99")).message
    on_refused(
        store, Refused(stranger, Layer.AUTH, "test", direct=True), AuthConfig(mode="allowlist"), now, random.Random(3)
    )
    unowned = store.put_message(NewMessage(chat_jid="matrix:!room", content="anyone?", sender="matrix:@x")).message
    note_unowned(unowned, LayerContext(store, IdleQueue()))
    # a run that ended with an error and a log, and its reply that could not be delivered
    asked = store.put_message(NewMessage(chat_jid="telegram:1", content="question", sender="telegram:7")).message
    store.record_dispatch([Dispatch(asked.seq, "new", "corp", "", None)], asked.seq)
    store.start_run(run_record("run-done", "telegram:1", asked.seq, started=now - dt.timedelta(seconds=5)))
    reply = NewMessage(
        chat_jid="telegram:1", content="answer", direction="out", origin="agent", run_id="run-done", output_index=0
    )
    store.finish_runs(
        [
            RunEnd(
                run_id="run-done",
                chat_jid="telegram:1",
                seqs=[asked.seq],
                rows="done",
                run_status="error",
                folder="corp",
                topic="",
                output_count=1,
                error="exit code 1",
                replies=[reply],
                stderr="Traceback: boom\n",
                stdout="stray print\n",
            )
        ],
        now=now,
    )
    [sent] = [m for m in store.chat_messages("telegram:1") if m.direction == "out"]
    store.mark_delivery(sent.seq, "failed", error="403 Forbidden: bot was blocked")
    dead_letter(store, "telegram:2", "lost in the post")
    return store


def every_command(store: Store) -> dict[str, list[str]]:
    task_id = str(store.list_tasks(None)[0].id)
    return {
        "status": ["status"],
        "runs": ["runs"],
        "run-log": ["run-log", "run-done"],
        "dead": ["dead"],
        "replies": ["replies", "telegram:1"],
        "config show": ["config", "show"],
        "group list": ["group", "list"],
        "group show": ["group", "show", "corp"],
        "route list": ["route", "list"],
        "route test": ["route", "test", "--chat-jid", "telegram:5", "--sender", "telegram:7", "--content", "hi"],
        "onboarding list": ["onboarding", "list"],
        "apikey list": ["apikey", "list"],
        "group web-token --list": ["group", "web-token", "corp", "--list"],
        "hooks list": ["hooks", "list"],
        "task list": ["task", "list"],
        "task show": ["task", "show", task_id],
        "allow list": ["allow", "list"],
        "pairing list": ["pairing", "list"],
        "usage": ["usage"],
        "dead --retry": ["dead", "--retry"],  # last: it changes what the others show
    }


# ------------------------------------------------------------------------------------------------ the tests
def test_every_json_output_matches_its_schema_and_lists_something(gated: Gated, world: Store) -> None:
    commands = every_command(world)
    assert set(commands) == set(SCHEMAS)
    for name, args in commands.items():
        code = Exit.ATTENTION if name == "status" else Exit.OK
        document = ok(gated(*args, "--json"), code)
        jsonschema.validate(document, SCHEMAS[name])
        assert document not in ([], {}), f"{name}: the world gave it nothing to show"


def test_the_outputs_hold_what_the_store_holds(gated: Gated, world: Store) -> None:
    status = ok(gated("status", "--json"), Exit.ATTENTION)
    assert status["problems"] == {"gated_down": 1, "dead_letters": 1, "deliveries_failed": 1, "stuck_runs": 0}
    assert status["gated"] is None
    [run] = ok(gated("runs", "--json"))
    assert (run["id"], run["status"], run["error"], run["seconds"]) == ("run-done", "error", "exit code 1", 5.0)
    log = ok(gated("run-log", "run-done", "--json"))
    assert (log["stderr"], log["stdout"]) == ("Traceback: boom\n", "stray print\n")
    [dead] = ok(gated("dead", "--json"))
    assert (dead["chat_jid"], dead["content"], dead["status"], dead["last_run"]) == (
        "telegram:2",
        "lost in the post",
        "dead",
        None,
    )
    [reply] = ok(gated("replies", "telegram:1", "--json"))
    assert (reply["content"], reply["run_id"], reply["delivery_status"]) == ("answer", "run-done", "failed")
    assert reply["delivery_error"] == "403 Forbidden: bot was blocked"
    assert ok(gated("route", "test", "--chat-jid", "telegram:5", "--json"))["decision"]["folder"] == "corp"


def test_status_exits_4_while_no_gated_serves_the_store(gated: Gated, store: Store) -> None:
    """A newcomer's report: with gated dead it exited 0, so `gated status >/dev/null || alert` never alerted."""
    down = ok(gated("status", "--json"), Exit.ATTENTION)
    assert (down["gated"], down["problems"]["gated_down"]) == (None, 1)
    assert gated("status").output.startswith("gated: none serves this store")
    with StoreLock(store.engine, instance="serving"):
        up = ok(gated("status", "--json"))
        assert up["gated"].startswith("gated serving (pid ") and up["problems"]["gated_down"] == 0
        assert gated("status").output.startswith("gated: gated serving (pid ")


def test_status_exits_4_until_the_dead_letters_are_back_and_0_on_a_clean_store(gated: Gated, store: Store) -> None:
    serving = StoreLock(store.engine, instance="serving")  # a gated serves the store: only the dead letters count
    serving.acquire()
    assert ok(gated("status", "--json"))["problems"] == {
        "gated_down": 0,
        "dead_letters": 0,
        "deliveries_failed": 0,
        "stuck_runs": 0,
    }
    assert gated("status").exit_code == Exit.OK
    assert gated("group", "add", "corp").exit_code == 0
    seq = dead_letter(store, "telegram:2", "lost")
    assert gated("status").exit_code == Exit.ATTENTION
    assert "dead letters: 1" in gated("status").output
    assert ok(gated("dead", "--chat", "telegram:3", "--retry", "--json")) == {"retried": []}  # another chat's
    assert ok(gated("dead", "--chat", "telegram:2", "--retry", "--json")) == {"retried": [seq]}
    assert ok(gated("dead", "--retry", "--json")) == {"retried": []}
    assert [row.status for row in store.chat_messages("telegram:2") if row.direction == "in"] == ["new"]
    assert store.agent_cursor("telegram:2") == seq - 1, "the cursor is no longer a low-water mark"
    assert gated("status").exit_code == Exit.OK
    serving.release()


def test_a_run_in_flight_past_its_timeout_is_stuck(gated: Gated, store: Store) -> None:
    assert gated("group", "add", "corp", "--timeout", "120", "--idle-timeout", "60").exit_code == 0
    serving = StoreLock(store.engine, instance="serving")
    serving.acquire()
    seq = store.put_message(NewMessage(chat_jid="telegram:1", content="q", sender="telegram:7")).message.seq
    now = dt.datetime.now(dt.UTC)
    store.start_run(run_record("young", "telegram:1", seq, started=now - dt.timedelta(seconds=120 + STUCK_GRACE - 30)))
    assert gated("status").exit_code == Exit.OK
    store.start_run(run_record("old", "telegram:1", seq, started=now - dt.timedelta(seconds=120 + STUCK_GRACE + 30)))
    status = ok(gated("status", "--json"), Exit.ATTENTION)
    assert status["problems"]["stuck_runs"] == 1
    assert {run["id"]: run["stuck"] for run in status["running"]} == {"old": True, "young": False}
    assert "STUCK" in gated("status").output
    serving.release()


def test_bad_input_is_one_line_and_exit_2(gated: Gated) -> None:
    for args, fragment in (
        (["run-log", "no-such-run"], "no run 'no-such-run'"),
        (["replies", "telegram:1", "--since", "yesterday"], "--since 'yesterday'"),
        (["runs", "--status", "happy"], "'happy' is not one of"),
        (["group", "web-token", "corp", "--json"], "--json goes with --list"),
    ):
        result = gated(*args)
        assert result.exit_code == Exit.USAGE, result.output
        assert fragment in result.output and "Traceback" not in result.output


def test_replies_since_keeps_the_newer_ones(gated: Gated, store: Store) -> None:
    for text in ("one", "two"):
        store.put_message(NewMessage(chat_jid="web:corp", content=text, direction="out", origin="agent"))
    assert [r["content"] for r in ok(gated("replies", "web:corp", "--json"))] == ["one", "two"]
    assert [r["content"] for r in ok(gated("replies", "web:corp", "--limit", "1", "--json"))] == ["two"]
    assert ok(gated("replies", "web:corp", "--since", "2099-01-01", "--json")) == []
    assert len(ok(gated("replies", "web:corp", "--since", "5m", "--json"))) == 2


def fields(schema: dict[str, Any]) -> set[str]:
    """Every property name in ``schema``, nested ones included."""
    found: set[str] = set()
    for key, value in schema.items():
        if key == "properties":
            found |= set(value)
        if isinstance(value, dict):
            found |= fields(value)
        elif isinstance(value, list):
            found |= {name for item in value if isinstance(item, dict) for name in fields(item)}
    return found


@pytest.mark.parametrize("command", sorted(SCHEMAS))
def test_docs_cli_json_describes_every_field(command: str) -> None:
    text = DOCS.read_text()
    heading = f"## `gated {command}"
    assert heading in text, f"docs/cli-json.md has no section {heading}…`"
    section = text[text.index(heading) :].split("\n## ", 1)[0]
    shared = text[text.index("## Shared shapes") :].split("\n## ", 1)[0]
    said = section + shared
    missing = sorted(name for name in fields(SCHEMAS[command]) if f"`{name}`" not in said and f'"{name}"' not in said)
    assert missing == [], f"docs/cli-json.md does not describe these fields of gated {command} --json"
