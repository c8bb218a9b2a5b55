"""A test whose service is missing is skipped loudly on a laptop and fails under CI (tests/conftest.py).

The suite turns warnings into errors (pyproject's ``filterwarnings``), so the loud skip's own warning must be let
through as a warning: otherwise a laptop without PostgreSQL would see every PostgreSQL test error instead of skip.
Each case runs pytest on one PostgreSQL test in a child process, with no PostgreSQL configured.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
A_POSTGRES_TEST = "tests/e2e/test_run_bookkeeping.py"


def pytest_without_postgres(ci: str) -> subprocess.CompletedProcess[str]:
    environ = {key: value for key, value in os.environ.items() if key not in {"KANMON_TEST_PG_URL", "CI"}}
    environ["CI"] = ci
    argv = [sys.executable, "-m", "pytest", A_POSTGRES_TEST, "-m", "postgres", "-p", "no:cacheprovider", "-q"]
    return subprocess.run(argv, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120, check=False)


def test_a_laptop_without_postgresql_skips_its_tests_and_says_so() -> None:
    done = pytest_without_postgres(ci="")
    assert done.returncode == 0, done.stdout[-2000:]
    assert " skipped" in done.stdout and " error" not in done.stdout, done.stdout[-2000:]
    assert "SKIPPING PostgreSQL is not available" in done.stdout  # in the warnings summary


def test_ci_fails_the_tests_of_a_missing_postgresql() -> None:
    done = pytest_without_postgres(ci="true")
    assert done.returncode != 0
    assert "CI=true: integration tests must run, not skip" in done.stdout, done.stdout[-2000:]
