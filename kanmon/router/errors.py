"""Errors the router raises when a route being written is not acceptable.

    InvalidInput                    (kanmon.errors)
    └── RouteError
        └── GlobError

Matching never raises: a malformed glob simply matches nothing. These errors come from compiling a glob on
purpose (``kanmon.router.compile_glob``) and from ``validate_route``, which refuses a bad route before it is stored.
"""

from __future__ import annotations

from kanmon.errors import InvalidInput

__all__ = ["GlobError", "RouteError"]


class RouteError(InvalidInput):
    """Raised when a route's match, target or impulse_config cannot be accepted; the message is one line."""


class GlobError(RouteError):
    """Raised when a glob is malformed in the sense of Go's ``path.ErrBadPattern``."""

    def __init__(self, pattern: str, position: int, reason: str) -> None:
        super().__init__(f"bad glob {pattern!r}: {reason} at offset {position}")
        self.pattern = pattern
        self.position = position
        self.reason = reason

    def __repr__(self) -> str:
        return f"GlobError(pattern={self.pattern!r}, position={self.position}, reason={self.reason!r})"
