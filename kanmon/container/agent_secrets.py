"""Agent secrets: where each value comes from, and reading them at a run's start (never stored, never logged).

The ``secrets:`` section of ``kanmon.yaml`` maps a secret's name to its :class:`SecretSource`: a variable of gated's
own environment (``env: OPENAI_API_KEY``) or a file (``file: /run/secrets/github_token``, a Docker or Kubernetes
secret). A group names the secrets it may receive; :func:`read_secrets` reads their values when one of its runs
starts, so a rotated file is picked up by the next run, and the values travel only in the ``secrets`` object of the
input document on the agent's stdin (:class:`kanmon.container.payload.AgentInput`).

Every value read joins the log redaction set (:func:`kanmon.redaction.remember`) before anything else sees it. A
secret that cannot be read raises :class:`MissingSecret`, whose message names the secret and its source, never a
value. Reading is blocking file-system work: callers run it off the event loop.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kanmon.container.errors import InvalidRunSpec
from kanmon.redaction import remember

__all__ = [
    "MAX_SECRET_BYTES",
    "MissingSecret",
    "SecretSource",
    "is_env_name",
    "is_secret_name",
    "parse_source",
    "read_secret",
    "read_secrets",
]

#: The largest secret file read (a secret is a key or a token, not a data file).
MAX_SECRET_BYTES = 64 << 10

_SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SOURCE_SYNTAX = "{env: VARIABLE} or {file: /absolute/path} (env:VARIABLE or file:/absolute/path)"


def is_secret_name(name: str) -> bool:
    """A secret's name: a letter or ``_``, then letters, digits and ``_`` (at most 128), like ``OPENAI_API_KEY``."""
    return _SECRET_NAME.fullmatch(name) is not None


def is_env_name(name: str) -> bool:
    """A POSIX environment variable name: a letter or ``_``, then letters, digits and ``_``."""
    return _ENV_NAME.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class SecretSource:
    """Where one secret's value is read: a variable of gated's environment, or a file."""

    kind: Literal["env", "file"]
    ref: str  # the variable's name, or the file's absolute path

    def __post_init__(self) -> None:
        if self.kind == "env" and not is_env_name(self.ref):
            raise ValueError(f"env: {self.ref!r} is not an environment variable name")
        if self.kind == "file" and not Path(self.ref).is_absolute():
            raise ValueError(f"file: {self.ref!r} is not an absolute path")
        if self.kind not in ("env", "file"):
            raise ValueError(f"unknown secret source {self.kind!r}")

    def __str__(self) -> str:
        return f"{self.kind}:{self.ref}"

    def describe(self) -> str:
        """The source in words, for error messages: ``environment variable X`` or ``file /p``."""
        return f"environment variable {self.ref}" if self.kind == "env" else f"file {self.ref}"


def parse_source(raw: object) -> SecretSource:
    """A source from YAML (``{env: VAR}``, ``{file: /path}``) or text (``env:VAR``, ``file:/path``).

    Raises ``ValueError`` naming what is wrong.
    """
    if isinstance(raw, Mapping):
        if len(raw) != 1:
            raise ValueError(f"expected exactly one of env or file, got {sorted(map(str, raw))}")
        ((kind, ref),) = raw.items()
    elif isinstance(raw, str):
        kind, sep, ref = raw.strip().partition(":")
        if not sep:
            raise ValueError(f"expected {SOURCE_SYNTAX}, got {raw!r}")
    else:
        raise ValueError(f"expected {SOURCE_SYNTAX}, got {raw!r}")
    if kind not in ("env", "file") or not isinstance(ref, str):
        raise ValueError(f"expected {SOURCE_SYNTAX}, got {raw!r}")
    return SecretSource(kind, ref.strip())


class MissingSecret(InvalidRunSpec):
    """Raised when a secret a group receives cannot be read; names the secret and its source, never a value."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"secret {name}: {why}")
        self.name = name
        self.why = why


def read_secret(name: str, source: SecretSource, environ: Mapping[str, str]) -> str:
    """The value of secret ``name`` now; raises :class:`MissingSecret`. A file's value is its UTF-8 text without one
    trailing line ending; an empty value counts as missing (an unset variable in a compose file is empty)."""
    if source.kind == "env":
        value = environ.get(source.ref)
        if not value:
            raise MissingSecret(name, f"the environment variable {source.ref} of gated is {_unset(value)}")
        return value
    try:
        with Path(source.ref).open("rb") as file:
            data = file.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise MissingSecret(name, f"cannot read the file {source.ref}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise MissingSecret(name, f"the file {source.ref} is larger than {MAX_SECRET_BYTES >> 10} KiB")
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise MissingSecret(name, f"the file {source.ref} is not UTF-8 text") from None
    value = text.removesuffix("\n").removesuffix("\r")
    if not value:
        raise MissingSecret(name, f"the file {source.ref} is empty")
    return value


def _unset(value: str | None) -> str:
    return "not set" if value is None else "empty"


def read_secrets(
    names: Iterable[str], sources: Mapping[str, SecretSource], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The values of the secrets ``names`` (each configured in ``sources``), each remembered for log redaction.

    ``environ`` is gated's environment (``os.environ`` when None). Raises :class:`MissingSecret` for the first one
    that is not configured or cannot be read.
    """
    env = os.environ if environ is None else environ
    values: dict[str, str] = {}
    for name in names:
        source = sources.get(name)
        if source is None:
            raise MissingSecret(name, "it is not configured in the secrets: section of kanmon.yaml")
        value = read_secret(name, source, env)
        remember(value)  # before anyone can log it
        values[name] = value
    return values
