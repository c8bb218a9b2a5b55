"""The prefix layer (SPEC §6.3): a message that *starts with* ``@name `` or ``#name ``.

- ``@name rest`` goes to the child folder ``<owner>/<name>`` when it is registered; when it is not, the message falls
  through untouched (arizuko consumed it and dropped it silently, §11 B6).
- ``#name rest`` goes to the topic session ``#name``.
- Both may appear, in that order: ``@eng #release ship it``.
- The prefix is stripped; what follows must not be empty (a lone ``@name`` is the sticky layer's).

Only the very start counts (after leading whitespace): ``hello @bob``, ``mail me at x@example.com`` and ``see issue
#42`` are ordinary text (arizuko's unanchored pattern swallowed them). Names follow the folder-segment grammar for
``@`` (lowercase) and are letters, digits, ``_`` and ``-`` for ``#``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kanmon.folders import is_valid_folder
from kanmon.gateway.context import LayerContext

__all__ = ["PrefixSplit", "split_prefix"]

# The lookahead keeps `@child` + only whitespace out: there is nothing to forward after stripping it.
_MENTION = re.compile(r"@([a-z0-9][a-z0-9_-]{0,62})\s+(?=\S)")
_TAG = re.compile(r"#([A-Za-z0-9_][A-Za-z0-9_-]{0,62})\s+(?=\S)")


@dataclass(frozen=True, slots=True)
class PrefixSplit:
    """What a leading prefix decided: a child folder and/or a topic, and the content with the prefix removed."""

    folder: str | None
    topic: str | None
    content: str

    def describe(self) -> str:
        """``@eng -> corp/eng, #release -> topic #release``."""
        parts = []
        if self.folder is not None:
            parts.append(f"@{self.folder.rsplit('/', 1)[-1]} -> {self.folder}")
        if self.topic is not None:
            parts.append(f"{self.topic} -> topic {self.topic}")
        return ", ".join(parts)


def split_prefix(content: str, ctx: LayerContext, owner: str) -> PrefixSplit | None:
    """The prefix ``content`` starts with, resolved against ``owner``'s children; None when there is none."""
    text = content.lstrip()
    folder: str | None = None
    mention = _MENTION.match(text)
    if mention is not None:
        child = f"{owner}/{mention.group(1)}"
        if not is_valid_folder(child) or ctx.group(child) is None:
            return None
        folder, text = child, text[mention.end() :]
    topic: str | None = None
    tag = _TAG.match(text)
    if tag is not None:
        topic, text = f"#{tag.group(1)}", text[tag.end() :]
    if folder is None and topic is None:
        return None
    return PrefixSplit(folder, topic, text)
