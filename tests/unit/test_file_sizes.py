"""The project's rule (README, engineering standards): no source file over 400 lines, so each stays readable in one
sitting and is split by responsibility before it grows into several."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 400
SOURCES = ("kanmon", "agents")
KINDS = {".py", ".js", ".css", ".html", ".sh"}


def test_no_source_file_is_over_400_lines() -> None:
    files = [path for top in SOURCES for path in (ROOT / top).rglob("*") if path.suffix in KINDS and path.is_file()]
    assert len(files) > 50, "the walk found too few files: is ROOT right?"
    long = {str(path.relative_to(ROOT)): n for path in files if (n := len(path.read_text().splitlines())) > LIMIT}
    assert long == {}, f"split these by responsibility: {long}"
