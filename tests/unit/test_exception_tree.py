"""Every exception kanmon defines is a KanmonError, and ``kanmon/errors.py`` draws the tree the code really has."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import click

import kanmon
from kanmon import errors
from kanmon.errors import KanmonError

# click's own exceptions are how the CLI exits with a code; they carry kanmon's messages, they are not kanmon's errors
EXEMPT = (click.ClickException,)


def kanmon_exceptions() -> dict[str, type[BaseException]]:
    """Every exception class kanmon defines, by its qualified name (two modules may each have a private ``_Retry``)."""
    found: dict[str, type[BaseException]] = {}
    for module in pkgutil.walk_packages(kanmon.__path__, "kanmon."):
        if module.name.startswith("kanmon.migrations") or module.name.endswith("__main__"):
            continue  # Alembic's environment runs only inside Alembic; __main__ runs the CLI
        loaded = importlib.import_module(module.name)
        for cls in vars(loaded).values():
            mine = inspect.isclass(cls) and cls.__module__ == loaded.__name__
            if mine and issubclass(cls, BaseException) and not issubclass(cls, EXEMPT):
                found[f"{cls.__module__}.{cls.__name__}"] = cls
    return found


_NODE = re.compile(r"^ {4}((?:[│ ] {3})*)([├└]── )?([A-Za-z]\w*)")


def drawn_tree() -> dict[str, str]:
    """The drawing in kanmon/errors.py as {class name: parent name}."""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in (errors.__doc__ or "").splitlines():
        match = _NODE.match(line)
        if match is None or (match.group(2) is None and match.group(3) != "KanmonError"):
            continue
        depth = len(match.group(1)) // 4 + (1 if match.group(2) else 0)
        name = match.group(3)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((depth, name))
    return parents


def test_every_kanmon_exception_is_a_kanmon_error() -> None:
    strays = [name for name, cls in kanmon_exceptions().items() if not issubclass(cls, KanmonError)]
    assert strays == [], f"not under KanmonError: {strays}"


def test_the_drawn_tree_is_the_real_one() -> None:
    real = {cls.__name__: cls for cls in kanmon_exceptions().values() if not cls.__name__.startswith("_")}
    drawn = drawn_tree()
    public = {name for name in real if not name.startswith("_") and name != "KanmonError"}
    assert sorted(public - drawn.keys()) == [], "exceptions missing from the drawing in kanmon/errors.py"
    assert sorted(drawn.keys() - real.keys()) == [], "the drawing names exceptions that do not exist"
    for name, parent in drawn.items():
        bases = [base.__name__ for base in real[name].__bases__]
        assert parent in bases, f"{name} is drawn under {parent}, but its bases are {bases}"
