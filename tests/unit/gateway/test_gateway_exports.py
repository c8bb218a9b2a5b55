"""The gateway's public surface is short, documented, and it speaks no SQL (only kanmon.store does)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import kanmon.gateway
from kanmon.gateway import GatewayError, explain, probe_message
from tests.unit.gateway.gateway_world import CHAT, World

GATEWAY_DIR = Path(kanmon.gateway.__file__).parent


def test_every_exported_name_exists_and_is_documented() -> None:
    for name in kanmon.gateway.__all__:
        member = getattr(kanmon.gateway, name)
        assert getattr(member, "__doc__", None), name


def test_the_gateway_imports_no_sql_library() -> None:
    for path in GATEWAY_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                assert not name.startswith(("sqlalchemy", "psycopg")), f"{path.name} imports {name}"


def test_explain_refuses_a_context_that_could_write(world: World) -> None:
    with pytest.raises(GatewayError):
        explain(probe_message(CHAT, "/new"), world.ctx())
    assert world.replies() == []
