"""kanmon.queue exports a short, explicit surface, and imports nothing of SQL, containers, HTTP or the gateway."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import kanmon.queue

KANMON = Path(kanmon.queue.__file__).parents[1]
QUEUE_SOURCES = [*Path(kanmon.queue.__file__).parent.glob("*.py"), KANMON / "clock.py", KANMON / "logcontext.py"]
# the clock and the log context's ids: standard library only, shared by every layer
ALLOWED_KANMON = ("kanmon.queue", "kanmon.clock", "kanmon.errors", "kanmon.logcontext")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_queue_package_exports_exactly_its_public_names() -> None:
    assert sorted(kanmon.queue.__all__) == [
        "GroupQueue",
        "Lane",
        "LaneHook",
        "LaneResult",
        "QueueCounts",
        "RetryPolicy",
        "RunLane",
        "lane_for",
    ]
    assert all(hasattr(kanmon.queue, name) for name in kanmon.queue.__all__)


def test_the_queue_imports_only_the_standard_library_tenacity_and_its_own_modules() -> None:
    for path in QUEUE_SOURCES:
        for name in imported_modules(path):
            top = name.split(".")[0]
            if top == "kanmon":
                assert name.startswith(ALLOWED_KANMON), f"{path.name} imports {name}"
            else:
                assert top in sys.stdlib_module_names or top == "tenacity", f"{path.name} imports {name}"
