"""The router's public surface is short and explicit, and the router stays pure (no store, no gateway)."""

from __future__ import annotations

import ast
from pathlib import Path

import kanmon.router

ROUTER_DIR = Path(kanmon.router.__file__).parent


def test_every_exported_name_exists_and_is_documented() -> None:
    for name in kanmon.router.__all__:
        member = getattr(kanmon.router, name)
        assert getattr(member, "__doc__", None), name


def test_router_imports_nothing_from_the_store_the_gateway_or_io_libraries() -> None:
    forbidden = ("kanmon.store", "kanmon.gateway", "kanmon.gated", "sqlalchemy", "docker", "httpx", "fnmatch")
    for path in ROUTER_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(forbidden), f"{path.name} imports {name}"
