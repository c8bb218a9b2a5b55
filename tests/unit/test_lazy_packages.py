"""Packages whose names load on first use (kanmon.lazy): the same names as before, and the CLI kept light.

``gated group list`` imported the whole gateway, FastAPI and httpx because importing any submodule of
``kanmon.gateway`` or ``kanmon.web`` ran a package ``__init__`` that imported all of them (1.8 s to start, 72 MB;
0.9 s and 52 MB after).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import kanmon.gateway
import kanmon.web

LAZY_PACKAGES = [kanmon.gateway, kanmon.web]

#: The CLI modules whose commands only read and write the store or the config: none needs the HTTP stack or the
#: running gateway (``gated run``, ``demo``, ``chat`` and ``adapter`` do).
STORE_COMMANDS = [
    "kanmon.gated.apikey_commands",
    "kanmon.gated.auth_commands",
    "kanmon.gated.hook_commands",
    "kanmon.gated.inspect_commands",
    "kanmon.gated.onboarding_commands",
    "kanmon.gated.registry_commands",
    "kanmon.gated.status_commands",
    "kanmon.gated.store_commands",
    "kanmon.gated.task_commands",
    "kanmon.gated.usage_commands",
]
HEAVY = ["fastapi", "uvicorn", "httpx", "docker", "kanmon.web.app", "kanmon.gateway.service", "kanmon.gateway.loop"]


def type_checking_imports(package: ModuleType) -> dict[str, str]:
    """``name -> module`` of each ``from module import name as name`` in the package's ``if TYPE_CHECKING:``."""
    assert package.__file__ is not None
    tree = ast.parse(Path(package.__file__).read_text())
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom) and statement.module is not None
                for alias in statement.names:
                    assert alias.asname == alias.name, f"{alias.name}: re-exported as itself, for type checkers"
                    found[alias.name] = statement.module
    return found


@pytest.mark.parametrize("package", LAZY_PACKAGES, ids=lambda p: p.__name__)
def test_what_type_checkers_see_is_what_the_package_gives(package: ModuleType) -> None:
    seen = type_checking_imports(package)
    assert seen, "the package declares its names for type checkers"
    assert sorted(seen) == package.__all__
    homes = {module: importlib.import_module(module) for module in seen.values()}  # first, as other code may
    for name, module in seen.items():
        assert getattr(package, name) is getattr(homes[module], name), name
    assert set(package.__all__) <= set(dir(package))


@pytest.mark.parametrize("package", LAZY_PACKAGES, ids=lambda p: p.__name__)
def test_no_exported_name_is_also_a_submodule(package: ModuleType) -> None:
    # importing kanmon.gateway.explain (as the CLI did) set kanmon.gateway.explain to that module, over the
    # function: a module attribute that exists is never looked up through the lazy __getattr__
    submodules = {info.name for info in pkgutil.iter_modules(package.__path__)}
    assert not submodules & set(package.__all__)


@pytest.mark.parametrize("package", LAZY_PACKAGES, ids=lambda p: p.__name__)
def test_an_unknown_name_is_an_attribute_error(package: ModuleType) -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nonexistent'"):
        _ = package.Nonexistent
    with pytest.raises(ImportError):
        exec(f"from {package.__name__} import Nonexistent", {})


def test_a_name_loads_its_submodule_only_when_asked_for() -> None:
    code = (
        "import sys, kanmon.gateway, kanmon.web\n"
        "before = 'kanmon.gateway.service' in sys.modules or 'kanmon.web.app' in sys.modules\n"
        "from kanmon.gateway import Gateway\n"
        "from kanmon.web import create_app\n"
        "print(before, 'kanmon.gateway.service' in sys.modules, 'fastapi' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True", "True"]


def test_the_store_commands_of_the_cli_import_no_http_stack_and_no_running_gateway() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for module in {STORE_COMMANDS!r}: importlib.import_module(module)\n"
        f"print(json.dumps([name for name in {HEAVY!r} if name in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", f"imported by the CLI's store commands: {done.stdout.strip()}"


#: Heavy libraries gated's start-up does without: modules import them for type checkers only, and where used.
LAZY_LIBRARIES = ["httpx"]


def runtime_uses_without_import(path: Path, library: str) -> list[str]:
    """``file:line`` of each use of ``library`` outside annotations in a function with no ``import library`` in it
    or around it (the module imports it only under ``if TYPE_CHECKING:``, so such a use is a NameError)."""
    tree = ast.parse(path.read_text())
    missing: list[str] = []

    def annotations(node: ast.AST) -> set[int]:
        found: set[int] = set()
        for child in ast.walk(node):
            parts: list[ast.expr | None] = []
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                parts = [child.returns, *(a.annotation for a in (*child.args.args, *child.args.kwonlyargs))]
            elif isinstance(child, ast.AnnAssign):
                parts = [child.annotation]
            for part in parts:
                found |= {id(n) for n in ast.walk(part)} if part is not None else set()
        return found

    hidden = annotations(tree)

    def visit(node: ast.AST, imported: bool) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            imported = imported or any(
                isinstance(n, ast.Import) and any(a.name == library for a in n.names) for n in ast.walk(node)
            )
        if isinstance(node, ast.Name) and node.id == library and id(node) not in hidden and not imported:
            missing.append(f"{path.name}:{node.lineno}")
        for child in ast.iter_child_nodes(node):
            visit(child, imported)

    for statement in tree.body:
        if not (isinstance(statement, ast.If) and isinstance(statement.test, ast.Name)):  # skip TYPE_CHECKING
            visit(statement, imported=False)
    return missing


@pytest.mark.parametrize("library", LAZY_LIBRARIES)
def test_a_library_imported_for_type_checkers_only_is_imported_where_it_is_used(library: str) -> None:
    root = Path(kanmon.__file__).parent
    lazy = [
        path
        for path in sorted(root.rglob("*.py"))
        if f"    import {library}" in path.read_text() and f"\nimport {library}\n" not in path.read_text()
    ]
    assert lazy, f"no module imports {library} lazily: the test looks at nothing"
    missing = [use for path in lazy for use in runtime_uses_without_import(path, library)]
    assert not missing, f"{library} used where it is not imported: {missing}"


def test_a_gated_serving_web_chats_only_never_imports_the_lazy_libraries(tmp_path: Path) -> None:
    # bench/rss.py: httpx and what it pulls in (idna, pygments) were 2.3 MiB of a 1,000-group gated's RSS
    code = f"""
import asyncio, json, sys
from kanmon.container import InProcessRuntime
from kanmon.gated.config import load_settings
from kanmon.gated.daemon import Daemon
from kanmon.serving import listen
from kanmon.store import Group, NewMessage, Store, upgrade

async def main():
    async def agent(call):
        call.emit({{"status": "ok", "result": "pong"}})
        return 0
    store = Store.open("sqlite:///{tmp_path}/kanmon.db")
    upgrade(store.engine)
    store.add_group(Group(folder="g", container_config={{"runtime": "inprocess"}}))
    settings = load_settings(data_dir="{tmp_path}", config_path=None, environ={{}}, overrides={{}})
    runtime = InProcessRuntime(agent)
    daemon = Daemon(settings, store, listener=listen("127.0.0.1:0"), runtimes={{"inprocess": runtime}})
    serving = asyncio.create_task(daemon.run())
    while not daemon.gateway.loop.ticks:
        await asyncio.sleep(0.01)
    await daemon.gateway.put_message(NewMessage(chat_jid="web:g", content="ping", sender="web:me"))
    while store.counts()["inbound_new"] or runtime.running or not runtime.started:
        await asyncio.sleep(0.01)
    serving.cancel()  # as bench/rss.py: the HTTP side serves until cancelled
    await asyncio.gather(serving, return_exceptions=True)
    print(json.dumps([name for name in {LAZY_LIBRARIES!r} if name in sys.modules]))

asyncio.run(main())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
