"""Shared fixtures: where the real services (Docker engine, PostgreSQL) are, and how to get them.

`scripts/test.sh` starts both and exports DOCKER_HOST / KANMON_TEST_PG_URL. Tests marked `docker` or `postgres` skip
on a developer machine that lacks the service, loudly; under CI=true a missing service fails the run instead.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from kanmon.container.images import build_echo_image
from kanmon.gated import logs as gated_logs
from kanmon.gated.logs import HANDLER_NAME
from kanmon.store import Store, upgrade
from tests.pgdb import PrivatePostgres, create_pg_database, drop_pg_database
from tests.ports import free_port

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def service_missing(what: str, why: str) -> None:
    """Fail under CI, skip (with a warning that shows in the summary) elsewhere."""
    message = f"{what} is not available: {why}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: integration tests must run, not skip)", pytrace=False)
    warnings.warn(f"SKIPPING {message}; run scripts/test.sh to start it", stacklevel=2)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _no_leftover_log_handler() -> Iterator[None]:
    """A CLI test that configured logging must not leave gated's handler writing into a closed capture stream, nor
    its format: after a JSON one, every later test's command errors would be JSON log lines, not ``Error:`` lines."""
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(handler)
    gated_logs._format = None


@pytest.fixture
def unused_tcp_port() -> int:
    """pytest-asyncio's fixture, overridden: its port comes from the ephemeral range, where any outgoing connection
    may take it before the child process binds it (see tests/ports.py)."""
    return free_port()


@pytest.fixture
def unused_tcp_port_factory() -> Callable[[], int]:
    """pytest-asyncio's factory, overridden for the same reason as ``unused_tcp_port``."""
    return free_port


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A Docker SDK client for the engine the tests run against."""
    try:
        import docker

        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:
        service_missing("a Docker engine", str(exc))
    yield client
    client.close()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """SQLAlchemy URL of the PostgreSQL server the tests may create databases on."""
    url = os.environ.get("KANMON_TEST_PG_URL")
    if not url:
        service_missing("PostgreSQL", "KANMON_TEST_PG_URL is not set")
    assert url is not None
    return url


@pytest.fixture(scope="session")
def python_image(docker_client: Any) -> str:
    """A local image with python3.11, built by scripts/services.sh from a root filesystem (never pulled)."""
    name = os.environ.get("KANMON_TEST_PYTHON_IMAGE", "kanmon-test-python:3.11")
    try:
        docker_client.images.get(name)
    except Exception as exc:
        service_missing(f"the image {name}", f"{exc}; scripts/services.sh builds it")
    return name


@pytest.fixture(scope="session")
def echo_image(docker_client: Any, python_image: str) -> str:
    """A tiny image with the echo agent as its command, built from the local python image (never pulled)."""
    return build_echo_image(docker_client, python_image, repository="kanmon-test-echo")


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of this test's own (started; stopped afterwards), for tests that restart or stop it."""
    why = PrivatePostgres.available()
    if why is not None:
        service_missing("a private PostgreSQL cluster", why)
    # not under pytest's tmp_path: the server runs as the postgres user, who may not enter root's 0700 directories
    directory = Path(tempfile.mkdtemp(prefix="kanmon-pg-"))
    cluster = PrivatePostgres(directory)
    try:
        cluster.init()
        yield cluster
    finally:
        if cluster.running():
            cluster.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_admin_url(postgres_url: str) -> str:
    """The test server's maintenance database, for CREATE/DROP DATABASE."""
    return postgres_url


@pytest.fixture(scope="session")
def pg_template(pg_admin_url: str) -> Iterator[str]:
    """A migrated database that per-test databases are copied from (faster than migrating each one)."""
    url = create_pg_database(pg_admin_url)
    store = Store.open(url)
    upgrade(store.engine)
    store.close()
    yield str(make_url(url).database)
    drop_pg_database(pg_admin_url, url)


@pytest.fixture
def pg_database(pg_admin_url: str) -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped after the test."""
    url = create_pg_database(pg_admin_url)
    yield url
    drop_pg_database(pg_admin_url, url)


SERVICE_MARKERS = ("docker", "postgres", "synapse")
# Under pytest-xdist (scripts/test.sh runs two workers), tests of one group run one after another on one worker:
# Docker tests share the engine and some find their containers by folder label; the heaviest tests (SIGKILL chaos,
# floods) would starve each other of the machine's two cores.
_HEAVY = ("tests/e2e/test_chaos.py", "tests/e2e/matrix/test_matrix_flood.py", "tests/e2e/test_telegram_process.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put each Docker test in the ``docker`` xdist group and each of the heaviest in ``heavy``."""
    for item in items:
        if item.get_closest_marker("docker") is not None or "docker_client" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("docker"))
        elif item.nodeid.startswith(_HEAVY):
            item.add_marker(pytest.mark.xdist_group("heavy"))


_service_outcomes: dict[str, dict[str, int]] = {m: {"passed": 0, "failed": 0, "skipped": 0} for m in SERVICE_MARKERS}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count what happened to the tests that need a real service."""
    if report.when != "call" and not (report.when == "setup" and report.outcome != "passed"):
        return
    for marker in SERVICE_MARKERS:
        if marker in report.keywords:
            _service_outcomes[marker][report.outcome] += 1


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Say how many Docker and PostgreSQL tests really ran; under CI a skipped one fails the run."""
    for marker, outcome in _service_outcomes.items():
        terminalreporter.write_line(
            f"{marker} tests: {outcome['passed']} passed, {outcome['failed']} failed, {outcome['skipped']} skipped",
            yellow=bool(outcome["skipped"]),
            bold=True,
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI=true, integration tests that skipped make the run fail even if nothing else did."""
    if IN_CI and any(outcome["skipped"] for outcome in _service_outcomes.values()):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
