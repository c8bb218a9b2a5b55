"""Groups, routes, sessions, the run log, system messages, channels and counts."""

from __future__ import annotations

import datetime as dt

import pytest

from kanmon.errors import InvalidFolder, InvalidInput
from kanmon.store import Channel, Conflict, Group, NewMessage, NotFound, Run, Store


def test_add_group_stores_it_with_defaults(store: Store) -> None:
    group = store.add_group(Group(folder="corp/eng", container_config={"runtime": "process"}))
    assert group.name == "corp/eng"
    assert group.added_at is not None and group.added_at.tzinfo is not None
    assert store.get_group("corp/eng") == group
    assert store.list_groups() == [group]


def test_adding_a_group_twice_is_a_conflict_and_keeps_the_first(store: Store) -> None:
    store.add_group(Group(folder="support", name="first"))
    with pytest.raises(Conflict, match="already exists"):
        store.add_group(Group(folder="support", name="second"))
    assert [g.name for g in store.list_groups()] == ["first"]


@pytest.mark.parametrize("folder", ["../x", "Bad", "/abs", "a//b", "a/", "-a", "a/../b", "", "a b", "x" * 64])
def test_a_malformed_folder_is_refused_and_nothing_is_written(store: Store, folder: str) -> None:
    with pytest.raises(InvalidFolder):
        store.add_group(Group(folder=folder))
    assert store.list_groups() == []


def test_a_group_config_is_updated_in_one_transaction_and_caches_see_it(store: Store) -> None:
    store.add_group(Group(folder="corp", name="Corp", container_config={"env": {"A": "1"}, "cpus": 2}))
    version = store.config_version()
    updated = store.update_group_config("corp", lambda config: {**config, "env": {"A": "2"}})
    assert updated.container_config == {"env": {"A": "2"}, "cpus": 2} and updated.name == "Corp"
    assert store.get_group("corp") == updated
    assert store.config_version() > version  # the registry and every cache of groups reload


def test_a_refused_group_config_change_leaves_it_as_it_was(store: Store) -> None:
    store.add_group(Group(folder="corp", container_config={"cpus": 2}))
    version = store.config_version()

    def refuse(config: dict[str, object]) -> dict[str, object]:
        raise InvalidFolder("no")

    with pytest.raises(InvalidFolder):
        store.update_group_config("corp", refuse)
    assert store.get_group("corp") == store.list_groups()[0]
    assert store.list_groups()[0].container_config == {"cpus": 2} and store.config_version() == version
    with pytest.raises(NotFound):
        store.update_group_config("nope", dict)


def test_removing_a_group_removes_its_sessions_and_system_messages(store: Store) -> None:
    store.add_group(Group(folder="support"))
    store.set_session("support", "", "s1")
    store.add_system_message("support", origin="gateway", event="hello")
    store.remove_group("support")
    assert store.get_group("support") is None
    assert store.get_session("support") is None
    assert store.system_messages_for("support") == []
    with pytest.raises(NotFound):
        store.remove_group("support")


def test_a_group_that_routes_point_at_is_removed_only_together_with_them(store: Store) -> None:
    for folder in ("support", "other"):
        store.add_group(Group(folder=folder))
    first = store.add_route(seq=0, match="", target="support")
    second = store.add_route(seq=1, match="verb=join", target="folder:support")
    kept = store.add_route(seq=2, match="", target="other")
    spellings = ("support", "folder:support")

    with pytest.raises(Conflict, match=f"group 'support' is the target of routes {first.id}, {second.id}"):
        store.remove_group("support", routes_to=spellings)
    assert store.get_group("support") is not None
    assert store.list_routes() == [first, second, kept]

    removed = store.remove_group("support", routes_to=spellings, with_routes=True)

    assert removed == [first, second]
    assert store.get_group("support") is None
    assert store.list_routes() == [kept]


def test_every_backend_takes_the_same_route_seqs(store: Store) -> None:
    # routes.seq is 32 bits on PostgreSQL: SQLite took a seq past it that PostgreSQL refused with its driver's words
    for seq in (2**31, -(2**31) - 1, 10**20):
        with pytest.raises(InvalidInput, match=f"route seq {seq} is out of range"):
            store.add_route(seq=seq, match="", target="support")
    assert store.list_routes() == []
    edges = [store.add_route(seq=seq, match="", target="support") for seq in (2**31 - 1, -(2**31))]
    assert store.list_routes() == edges[::-1]


def test_routes_are_listed_in_seq_then_id_order(store: Store) -> None:
    late = store.add_route(seq=10, match="platform=telegram", target="support")
    early = store.add_route(seq=0, match="", target="corp/eng")
    tie = store.add_route(seq=10, match="verb=react", target="builtin:drop", impulse_config='{"threshold": 50}')
    assert [r.id for r in store.list_routes()] == [early.id, late.id, tie.id]
    assert tie.impulse_config == '{"threshold": 50}'
    store.remove_route(late.id)
    assert [r.id for r in store.list_routes()] == [early.id, tie.id]
    with pytest.raises(NotFound):
        store.remove_route(late.id)


def test_sessions_are_kept_per_folder_and_topic(store: Store) -> None:
    store.add_group(Group(folder="support"))
    store.set_session("support", "", "s-default")
    store.set_session("support", "#billing", "s-billing")
    store.set_session("support", "", "s-default-2")
    assert store.get_session("support").session_id == "s-default-2"  # type: ignore[union-attr]
    assert store.get_session("support", "#billing").session_id == "s-billing"  # type: ignore[union-attr]
    assert store.delete_session("support", "#billing")
    assert not store.delete_session("support", "#billing")
    assert store.get_session("support", "#billing") is None


def make_run(run_id: str, instance: str = "i1", status: str = "starting") -> Run:
    return Run(
        id=run_id,
        instance=instance,
        group_folder="support",
        topic="",
        chat_jid="telegram:1",
        runtime="process",
        status=status,  # type: ignore[arg-type]
        started_at=dt.datetime.now(dt.UTC),
        first_seq=1,
        last_seq=3,
        message_count=3,
    )


def test_runs_in_flight_are_this_instances_starting_and_running_runs(store: Store) -> None:
    store.start_run(make_run("r1"))
    store.start_run(make_run("r2"))
    store.start_run(make_run("r3", instance="other"))
    store.update_run("r2", status="ok", output_count=1, ended_at=dt.datetime.now(dt.UTC))
    store.update_run("r1", status="running", container="kanmon-i1-support-r1")
    assert [r.id for r in store.runs_in_flight("i1")] == ["r1"]
    assert store.get_run("r1").container == "kanmon-i1-support-r1"  # type: ignore[union-attr]
    assert store.count_runs() == {"running": 1, "starting": 1, "ok": 1}
    with pytest.raises(NotFound):
        store.update_run("missing", status="ok")


def test_system_messages_are_queued_oldest_first(store: Store) -> None:
    store.add_group(Group(folder="support"))
    store.add_system_message("support", origin="gateway", event="session_reset", body="fresh")
    store.add_system_message("support", origin="cli", event="note", body="second")
    assert [(m.event, m.body) for m in store.system_messages_for("support")] == [
        ("session_reset", "fresh"),
        ("note", "second"),
    ]


def test_re_registering_a_channel_replaces_it(store: Store) -> None:
    now = dt.datetime.now(dt.UTC)
    first = Channel(
        name="tg", url="http://a", token_hash="h1", jid_prefixes=["telegram:"], capabilities={}, registered_at=now
    )
    store.save_channel(first)
    store.save_channel(
        Channel(
            name="tg",
            url="http://b",
            token_hash="h2",
            jid_prefixes=["telegram:"],
            capabilities={"typing": True},
            registered_at=now,
        )
    )
    [channel] = store.list_channels()
    assert (channel.url, channel.token_hash, channel.capabilities) == ("http://b", "h2", {"typing": True})
    assert store.remove_channel("tg")
    assert store.list_channels() == []


def test_counts_summarise_the_store(store: Store) -> None:
    store.add_group(Group(folder="support"))
    store.put_message(NewMessage(chat_jid="telegram:1", content="x"))
    store.put_message(NewMessage(chat_jid="telegram:1", content="y", direction="out"))
    counts = store.counts()
    assert counts["groups"] == 1
    assert counts["messages"] == 2
    assert counts["inbound_new"] == 1
    assert counts["deliveries_pending"] == 1
    assert counts["last_seq"] == store.max_seq()
