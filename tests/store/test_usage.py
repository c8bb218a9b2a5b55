"""Usage in the store (issue 16 item 4): one row per ``(run_id, output_index)``, so a replayed output never counts
twice; sums per run, session, group and day; a group's spend of a day for its budget. On every backend."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from kanmon.store import Group, RunEnd, Store, UsageEntry

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


def entry(run: str, index: int, *, folder: str = "corp", day: str = "2026-11-30", cost: float = 0.5,
          session: str | None = "s1", topic: str = "") -> UsageEntry:  # fmt: skip
    return UsageEntry(
        run_id=run, output_index=index, group_folder=folder, topic=topic, chat_jid=f"web:{folder}",
        session_id=session, day=day, recorded_at=NOW, input_tokens=100, output_tokens=10, cache_read_tokens=1000,
        cache_write_tokens=1, cost_usd=cost,
    )  # fmt: skip


@pytest.fixture
def corp(store: Store) -> Store:
    store.add_group(Group(folder="corp"))
    return store


def test_recorded_usage_is_kept_once_per_run_output(corp: Store) -> None:
    first = corp.record_usage([entry("r1", 0), entry("r1", 1)])
    assert [(e.run_id, e.output_index) for e in first] == [("r1", 0), ("r1", 1)]
    # the run is reclaimed and replays its output from the start: nothing new, nothing twice
    again = corp.record_usage([entry("r1", 0, cost=9.0), entry("r1", 1), entry("r1", 2)])
    assert [(e.run_id, e.output_index) for e in again] == [("r1", 2)]
    [total] = corp.usage_sums(())
    assert (total.outputs, total.input_tokens, total.cache_read_tokens) == (3, 300, 3000)
    assert total.cost_usd == pytest.approx(1.5)


def test_sums_by_run_session_group_and_day(corp: Store) -> None:
    corp.add_group(Group(folder="ops"))
    corp.record_usage([
        entry("r1", 0), entry("r1", 1), entry("r2", 0, session="s2", day="2026-12-01"),
        entry("r3", 0, folder="ops", cost=2.0, session=None),
    ])  # fmt: skip
    by_run = {s.key["run_id"]: s.outputs for s in corp.usage_sums(("run_id",))}
    assert by_run == {"r1": 2, "r2": 1, "r3": 1}
    by_session = {(s.key["group_folder"], s.key["session_id"]): s.cost_usd for s in corp.usage_sums(
        ("group_folder", "session_id"))}  # fmt: skip
    assert by_session == {("corp", "s1"): 1.0, ("corp", "s2"): 0.5, ("ops", None): 2.0}
    by_day = [(s.key["day"], s.key["group_folder"], s.cost_usd) for s in corp.usage_sums(("day", "group_folder"))]
    assert by_day == [("2026-11-30", "corp", 1.0), ("2026-11-30", "ops", 2.0), ("2026-12-01", "corp", 0.5)]
    assert [s.key for s in corp.usage_sums(("day",), folder="corp", since="2026-12-01")] == [{"day": "2026-12-01"}]
    assert corp.spent("corp", "2026-11-30") == pytest.approx(1.0)
    assert corp.spent("corp", "2026-12-02") == 0.0
    with pytest.raises(ValueError, match="cannot sum usage by 'cost_usd'"):
        corp.usage_sums(("cost_usd",))


def test_a_run_end_records_its_usage_in_the_same_transaction(corp: Store) -> None:
    end = RunEnd(
        run_id=None, chat_jid="web:corp", seqs=[], rows="done", run_status="ok", folder="corp", topic="",
        usage=[entry("r1", 0), entry("r1", 1)],
    )  # fmt: skip
    [ended] = corp.finish_runs([end], now=NOW)
    assert len(ended.usage) == 2
    [replayed] = corp.finish_runs([dataclasses.replace(end, usage=[entry("r1", 1), entry("r1", 2)])], now=NOW)
    assert [e.output_index for e in replayed.usage] == [2]
    assert corp.usage_sums(())[0].outputs == 3


def test_usage_outlives_its_group(corp: Store) -> None:
    corp.record_usage([entry("r1", 0)])
    corp.remove_group("corp")
    assert corp.usage_sums(("group_folder",))[0].key == {"group_folder": "corp"}


def test_an_agents_session_id_with_a_lone_surrogate_or_a_nul_is_stored_with_replacement_characters(
    corp: Store,
) -> None:
    """The id comes from the agent's output (``newSessionId``), which JSON lets carry both; neither backend stores
    them (SQLite's driver cannot encode a lone surrogate, PostgreSQL refuses NUL in text)."""
    corp.record_usage([entry("r1", 0, session="s\ud800"), entry("r1", 1, session="s\x00t")])
    sessions = {s.key["session_id"] for s in corp.usage_sums(("session_id",))}
    assert sessions == {"s\ufffd", "s\ufffdt"}
