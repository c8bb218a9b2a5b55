"""One gated per store: the lock is exclusive, says who holds it, and dies with its holder."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import text

from kanmon.store import NewMessage, Store, StoreFenced
from kanmon.store.lock import StoreLock, StoreLocked
from tests.pgdb import create_pg_database, drop_pg_database


def test_a_second_lock_on_the_same_store_is_refused_naming_the_holder(store: Store) -> None:
    with StoreLock(store.engine, instance="first"):
        second = StoreLock(store.engine, instance="second")
        with pytest.raises(StoreLocked, match=r"in use by gated first \(pid \d+ on .+\)"):
            second.acquire()
    # released: the next one may take it
    with StoreLock(store.engine, instance="second"):
        pass


def test_who_holds_the_store_is_read_without_taking_the_lock(store: Store) -> None:
    """``gated status`` says whether a gated serves the store (a newcomer's report: it could not tell a dead gated)."""
    looker = StoreLock(store.engine, instance="status")
    assert looker.held_by() is None
    with StoreLock(store.engine, instance="serving"):
        holder = looker.held_by()
        assert holder is not None and holder.startswith("gated serving (pid ")
        assert not looker.held  # it only looked
    assert looker.held_by() is None
    with StoreLock(store.engine, instance="next"):  # and looking never kept anyone out
        pass


def test_the_lock_dies_with_a_killed_holder(store_url: str, store: Store) -> None:
    holder = textwrap.dedent(
        f"""
        import sys, time
        from kanmon.store import Store
        from kanmon.store.lock import StoreLock
        lock = StoreLock(Store.open({store_url!r}).engine, instance="doomed")
        lock.acquire()
        print("locked", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLocked, match="doomed"):
            StoreLock(store.engine, instance="next").acquire()
        proc.kill()  # SIGKILL: no cleanup code runs
        proc.wait(10)
        lock = StoreLock(store.engine, instance="next")
        for _ in range(50):  # the server notices the dead session within moments
            try:
                lock.acquire()
                break
            except StoreLocked:
                import time

                time.sleep(0.1)
        else:
            pytest.fail("the lock of a killed holder was never released")
        lock.release()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_held_lock_checks_out_and_a_released_one_does_not(store: Store) -> None:
    lock = StoreLock(store.engine, instance="first")
    lock.acquire()
    assert lock.check() is None
    lock.release()
    assert lock.check() == "the lock is not held"


def test_losing_the_lock_is_noticed_and_lets_the_next_gated_in(store: Store) -> None:
    """A database restart ends the lock's session; a removed lock file lets the next flock succeed: check() tells."""
    lock = StoreLock(store.engine, instance="first")
    lock.acquire()
    if store.dialect == "sqlite":
        assert store.engine.url.database is not None
        Path(store.engine.url.database + ".lock").unlink()
    else:
        with store.engine.connect() as conn:
            ended = conn.execute(
                text(
                    # this test's database only: advisory locks of other tests' databases (run beside it by
                    # another xdist worker) have the same key, and ending their sessions fails those tests
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND classid = :cls AND objid = 1 AND granted "
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                ),
                {"cls": 0x6B616E6D},
            ).scalar()
            assert ended
    problem = lock.check()
    assert problem is not None and ("removed" in problem or "session" in problem)
    assert not lock.held
    with StoreLock(store.engine, instance="second"):  # the store is free for the next one
        pass


def test_fenced_writes_fail_once_another_gated_takes_the_store(store_url: str) -> None:
    first, second = Store.open(store_url), Store.open(store_url)
    try:
        epoch = first.take_epoch()
        assert first.fence == epoch
        first.record_dispatch([], 5)  # a fenced write, allowed while the epoch is ours
        assert second.take_epoch() == epoch + 1
        with pytest.raises(StoreFenced, match="another gated took the store over"):
            first.record_dispatch([], 6)
        with pytest.raises(StoreFenced):
            first.put_message(NewMessage(chat_jid="web:x", content="reply", direction="out"), fenced=True)
        first.put_message(NewMessage(chat_jid="web:x", content="an adapter's message"))  # ingest is never fenced
        second.record_dispatch([], 6)
        assert second.poll_cursor() == 6
        # the first one cannot take the store back as if nothing happened: the epoch moved on
        with pytest.raises(StoreFenced, match="meanwhile"):
            first.take_epoch(previous=epoch)
        # nobody else came in between: the same epoch, so writes in flight stay valid
        assert second.take_epoch(previous=epoch + 1) == epoch + 1
        second.record_dispatch([], 7)
    finally:
        first.close()
        second.close()


@pytest.mark.postgres
def test_the_refusal_names_this_databases_holder_not_another_stores_on_the_same_server(pg_admin_url: str) -> None:
    """Several kanmon stores may share one PostgreSQL server; advisory locks are per database, and so is the holder."""
    urls = [create_pg_database(pg_admin_url) for _ in range(2)]
    neighbour, ours = (Store.open(url) for url in urls)
    try:
        # the other store's gated took its lock first, so its row comes first in pg_locks
        with StoreLock(neighbour.engine, instance="neighbour"), StoreLock(ours.engine, instance="ours"):
            with pytest.raises(StoreLocked) as refused:
                StoreLock(ours.engine, instance="third").acquire()
            assert "gated ours" in str(refused.value) and "neighbour" not in str(refused.value)
    finally:
        neighbour.close()
        ours.close()
        for url in urls:
            drop_pg_database(pg_admin_url, url)


def test_a_store_other_users_may_read_is_named_with_its_mode(tmp_path: Path) -> None:
    """New stores are private; one made before (0644 under umask 022) or by hand is named, for gated's start line."""
    data = tmp_path / "data"
    store = Store.open(f"sqlite:///{data / 'kanmon.db'}")
    try:
        assert store.exposed_files() == []  # as made: folder 0700, file 0600
        (data / "kanmon.db").chmod(0o644)
        data.chmod(0o755)
        assert store.exposed_files() == [f"{data / 'kanmon.db'} (mode 0644)", f"{data} (mode 0755)"]
    finally:
        store.close()


def test_free_space_is_the_sqlite_file_systems_and_none_in_memory(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'data' / 'kanmon.db'}")
    try:
        free = store.free_space()
        assert free is not None and free > 0
        assert store.exposed_files() == []
    finally:
        store.close()
