"""kanmon.web: the HTTP surface served inside ``gated run`` (SPEC §11, §12).

Its names are imported on first use (:func:`kanmon.lazy.lazy_exports`): a CLI command that needs one helper of a
submodule does not import FastAPI with the whole app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kanmon.lazy import lazy_exports

__all__: list[str]  # the names below, set by lazy_exports

if TYPE_CHECKING:
    from kanmon.web.app import create_app as create_app
    from kanmon.web.deps import WebConfig as WebConfig
else:
    __getattr__, __dir__, __all__ = lazy_exports(__name__, {"app": ["create_app"], "deps": ["WebConfig"]})
