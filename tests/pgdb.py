"""Throwaway PostgreSQL databases on the test server (one per test, or copied from a migrated template)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from tests.ports import free_port


def create_pg_database(admin_url: str, template: str | None = None) -> str:
    """Create a fresh database (optionally copied from ``template``) and return its URL."""
    name = f"kanmon_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(admin_url: str, url: str) -> None:
    """Drop the database at ``url``, disconnecting whoever still uses it."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    admin.dispose()


@contextmanager
def backend_database(request: pytest.FixtureRequest, sqlite_file: Path) -> Iterator[str]:
    """A fresh store's URL on the backend ``request.param`` names: ``"sqlite"`` (the file ``sqlite_file``, created
    by whoever opens it) or ``"postgres"`` (a database copied from the migrated template, dropped afterwards)."""
    if request.param == "sqlite":
        sqlite_file.parent.mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{sqlite_file}"
        return
    admin = request.getfixturevalue("pg_admin_url")
    url = create_pg_database(admin, template=request.getfixturevalue("pg_template"))
    try:
        yield url
    finally:
        drop_pg_database(admin, url)


@contextmanager
def harness_database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """What :func:`tests.gateway_harness.running_gateway` takes as ``store_url`` on the backend ``request.param``
    names: ``None`` for ``"sqlite"`` (the harness's own file in its data directory) or, for ``"postgres"``, a fresh
    database copied from the migrated template, dropped afterwards."""
    if request.param == "sqlite":
        yield None
        return
    with backend_database(request, Path()) as url:
        yield url


class PrivatePostgres:
    """A PostgreSQL cluster of one test's own, which the test may stop, restart and kill (the shared one it may not).

    ``initdb`` and ``postgres`` refuse to run as root, so as root they run as the ``postgres`` user. Needs Debian's
    PostgreSQL server binaries (``scripts/services.sh`` installs them); :func:`available` says whether they are here.
    """

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.bin = _pg_bin()
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @staticmethod
    def available() -> str | None:
        """None when a private cluster can be made here, else why not."""
        if _pg_bin() is None:
            return "no PostgreSQL server binaries under /usr/lib/postgresql"
        if os.geteuid() == 0 and shutil.which("runuser") is None:
            return "running as root without runuser"
        return None

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the cluster's ``postgres`` database over TCP."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        """Create the cluster (about a second) and start it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "sock").mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
            shutil.chown(self.directory / "sock", "postgres", "postgres")
        self._pg(
            "initdb", "-D", str(self.directory / "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--locale=C.UTF-8", "--no-sync", "--no-instructions",
        )  # fmt: skip
        self.start()

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-k {self.directory / 'sock'} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        self._pg("pg_ctl", "-D", str(self.directory / "data"), "-l", str(self.directory / "log"), "-w", "-t", "30",
                 "-o", options, "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast`` ends every session at once, as a restart does)."""
        self._pg("pg_ctl", "-D", str(self.directory / "data"), "-m", mode, "-w", "-t", "30", "stop")

    def restart(self) -> None:
        """What ``pg_ctl restart -m fast`` does (every session ends; the server is back within a second or two), as a
        stop and a start, so the server logs to its file again instead of to a pipe of ours."""
        self.stop("fast")
        self.start()

    def running(self) -> bool:
        """True when the server runs."""
        assert self.bin is not None
        status = subprocess.run(
            [*self._as, str(self.bin / "pg_ctl"), "-D", str(self.directory / "data"), "status"],
            capture_output=True,
            check=False,
        )
        return status.returncode == 0

    def _pg(self, program: str, *args: str) -> None:
        assert self.bin is not None
        done = subprocess.run([*self._as, str(self.bin / program), *args], capture_output=True, timeout=60, check=False)
        if done.returncode:
            raise RuntimeError(f"{program} {' '.join(args)} failed ({done.returncode}): {done.stderr.decode()[-2000:]}")


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None
