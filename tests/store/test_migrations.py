"""Alembic produces exactly the declared schema (no drift) on every backend, and migrating twice is a no-op."""

from __future__ import annotations

from sqlalchemy import inspect

from kanmon.store import Store, current_revision, downgrade, head_revision, schema_drift, upgrade, upgrade_if_behind

SPEC_TABLES = {
    "messages",
    "chats",
    "registered_groups",
    "routes",
    "router_state",
    "sessions",
    "session_log",
    "system_messages",
    "channels",
}


def test_migrating_an_empty_database_creates_every_table_without_drift(empty_store_url: str) -> None:
    store = Store.open(empty_store_url)
    assert current_revision(store.engine) is None
    upgrade(store.engine)
    assert set(inspect(store.engine).get_table_names()) >= SPEC_TABLES
    assert current_revision(store.engine) == head_revision()
    assert schema_drift(store.engine) == []
    store.close()


def test_migrating_twice_is_a_no_op(empty_store_url: str) -> None:
    store = Store.open(empty_store_url)
    upgrade(store.engine)
    store.set_state("last_seq", "41")
    upgrade(store.engine)
    assert current_revision(store.engine) == head_revision()
    assert schema_drift(store.engine) == []
    assert store.get_state("last_seq") == "41"
    store.close()


def test_the_messages_table_has_the_unique_constraints_spec_names(empty_store_url: str) -> None:
    store = Store.open(empty_store_url)
    upgrade(store.engine)
    uniques = {tuple(u["column_names"]) for u in inspect(store.engine).get_unique_constraints("messages")}
    assert {("chat_jid", "id"), ("run_id", "output_index")} <= uniques
    store.close()


def test_drift_is_detected_when_the_schema_differs(empty_store_url: str) -> None:
    # the no-drift assertions above are only worth something if drift is actually reported
    store = Store.open(empty_store_url)
    upgrade(store.engine)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE stray (x INTEGER)")
    assert any(diff[0] == "remove_table" for diff in schema_drift(store.engine))
    store.close()


def test_upgrading_a_store_with_messages_keeps_them_and_leaves_them_undispatched(empty_store_url: str) -> None:
    store = Store.open(empty_store_url)
    upgrade(store.engine, "0001")
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO messages (id, chat_jid, direction, timestamp, received_at, status) "
            "VALUES ('m1', 'telegram:1', 'in', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'new')"
        )
    upgrade(store.engine)
    assert schema_drift(store.engine) == []
    [row] = store.new_messages(0)
    assert (row.id, row.status, row.routed_folder) == ("m1", "new", None)
    store.close()


def _bot_flags(store: Store) -> dict[str, bool]:
    with store.engine.connect() as conn:
        return {str(i): bool(flag) for i, flag in conn.exec_driver_sql("SELECT id, is_bot_message FROM messages")}


def test_upgrading_marks_stored_outbound_rows_as_the_bot_s_own_and_downgrading_undoes_it(empty_store_url: str) -> None:
    store = Store.open(empty_store_url)
    upgrade(store.engine, "0002")
    with store.engine.begin() as conn:
        for message_id, direction, bot in (("reply", "out", False), ("user", "in", False), ("other-bot", "in", True)):
            conn.exec_driver_sql(
                "INSERT INTO messages (id, chat_jid, direction, timestamp, received_at, is_bot_message) "
                f"VALUES ('{message_id}', 'telegram:1', '{direction}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, "
                f"{'true' if bot else 'false'})"
            )
    upgrade(store.engine)
    assert _bot_flags(store) == {"reply": True, "user": False, "other-bot": True}
    assert schema_drift(store.engine) == []

    downgrade(store.engine, "0002")
    assert current_revision(store.engine) == "0002"
    assert _bot_flags(store) == {"reply": False, "user": False, "other-bot": True}
    upgrade(store.engine)
    assert _bot_flags(store)["reply"] is True
    store.close()


def test_the_revisions_read_without_alembic_are_alembics_own() -> None:
    """gated reads the head and the known revisions from the files itself (so a current store never loads Alembic):
    they must be exactly what Alembic finds."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from kanmon.store.migrate import known_revisions

    config = Config()
    config.set_main_option("script_location", "kanmon:migrations")
    scripts = ScriptDirectory.from_config(config)
    assert head_revision() == scripts.get_current_head()
    assert known_revisions() == {script.revision for script in scripts.walk_revisions()}


def test_a_current_store_is_not_upgraded_again(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        assert current_revision(store.engine) == head_revision()
        assert not upgrade_if_behind(store.engine)
    finally:
        store.close()
