"""One gated per store: the lock is exclusive, says who holds it, and dies with its holder."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from kanmon.store import Store
from kanmon.store.lock import StoreLock, StoreLocked


def test_a_second_lock_on_the_same_store_is_refused_naming_the_holder(store: Store) -> None:
    with StoreLock(store.engine, instance="first"):
        second = StoreLock(store.engine, instance="second")
        with pytest.raises(StoreLocked, match=r"in use by gated first \(pid \d+ on .+\)"):
            second.acquire()
    # released: the next one may take it
    with StoreLock(store.engine, instance="second"):
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
