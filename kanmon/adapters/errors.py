"""What the channel adapters raise: one small tree under :class:`~kanmon.errors.KanmonError`.

A send to the platform either fails for good (:class:`SendRefused`: retrying cannot help, gated marks the reply
failed) or not now (:class:`SendLater`: flood control or the platform unreachable; gated retries with backoff).
"""

from __future__ import annotations

from kanmon.errors import KanmonError

__all__ = ["AdapterError", "MessageRefused", "SendLater", "SendRefused", "Stopped"]


class AdapterError(KanmonError):
    """Raised by a channel adapter (kanmon.adapters)."""


class SendRefused(AdapterError):
    """The platform (or the request) said no for good: a chat the bot cannot post to, a bad chat id, no content."""


class SendLater(AdapterError):
    """Not now: flood control (``retry_after`` seconds) or the platform unreachable (``retry_after`` None)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class Stopped(AdapterError):
    """The adapter is stopping; the request was abandoned (and will be made again after a restart)."""


class MessageRefused(AdapterError):
    """gated refused one message for good (malformed, too large): retrying cannot help."""
