"""Errors the gateway's layers raise on purpose.

    KanmonError                     (kanmon.errors)
    ├── GatewayError
    └── InvalidInput
        ├── CommandError
        └── AttachmentRefused

A :class:`CommandError` never escapes the command layer: its message becomes the reply to the chat, and nothing the
command would have changed is changed.
"""

from __future__ import annotations

from kanmon.errors import InvalidInput, KanmonError

__all__ = ["AttachmentRefused", "CommandError", "GatewayError"]


class GatewayError(KanmonError):
    """Raised when the gateway cannot act on a message for a reason that is not the user's input."""


class CommandError(InvalidInput):
    """Raised when a chat command's arguments are not acceptable; the message is the one-line reply."""

    def __init__(self, command: str, reason: str) -> None:
        super().__init__(reason)
        self.command = command
        self.reason = reason

    def __repr__(self) -> str:
        return f"CommandError(command={self.command!r}, reason={self.reason!r})"


class AttachmentRefused(InvalidInput):
    """Raised when a file an agent's output lists cannot be sent: outside its folder, not a regular file, too big,
    gone. The message is one line naming the path as the agent gave it and why."""
