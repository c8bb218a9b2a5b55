"""Package namespaces whose names are imported on first use (PEP 562 module ``__getattr__``).

A package's ``__init__`` that imports every submodule makes importing *any* of them import all: ``gated group list``
needed one constant of ``kanmon.gateway.metrics`` and one function of ``kanmon.web.webchat``, and so imported the
whole gateway, FastAPI and httpx before reading a row. With :func:`lazy_exports` a package keeps its public names
(``from kanmon.gateway import Gateway`` works as before, and type checkers see them through an
``if TYPE_CHECKING:`` block of the same imports), but a name's submodule is imported only when the name is first
looked up. ``tests/unit/test_lazy_packages.py`` checks that the block and the table agree.

No exported name may also be a submodule's name: importing ``package.name`` sets the package's attribute ``name`` to
that module, and a module ``__getattr__`` is only asked about attributes that do not exist (the same test checks).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, homes: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``, whose public names live in its submodules.

    ``homes`` maps a submodule's name relative to the package (``"service"``) to the names it exports
    (``["Gateway", "GatewayConfig"]``). The first lookup of a name imports its submodule and stores the name in the
    package, so later lookups are plain attribute reads. Looking up any other name raises :class:`AttributeError`,
    as for any module.
    """
    home_of = {name: f"{package}.{module}" for module, names in homes.items() for name in names}

    def __getattr__(name: str) -> Any:
        home = home_of.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *home_of})

    return __getattr__, __dir__, sorted(home_of)
