"""kanmon.web: the HTTP surface served inside ``gated run`` (SPEC §11, §12)."""

from __future__ import annotations

from kanmon.web.app import create_app
from kanmon.web.deps import WebConfig

__all__ = ["WebConfig", "create_app"]
