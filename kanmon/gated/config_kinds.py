"""Value kinds and validators for configuration keys: parsing text or YAML into typed values, and showing them back.

A key's *kind* turns a raw value (a string from the environment or a flag, or a native YAML value) into a typed
value; its optional *check* then validates that value. Both raise ``ValueError``/``TypeError`` and leave the wording
to the caller, which names the key, the source and ``Key.expect``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from kanmon.container.agent_secrets import SecretSource, is_secret_name, parse_source
from kanmon.container.base import AllowedMount
from kanmon.errors import InvalidInput
from kanmon.router import is_valid_glob

__all__ = [
    "BOOL",
    "FLOAT",
    "GLOBS",
    "INT",
    "MOUNT_ROOTS",
    "NAMES",
    "PATH",
    "PATHS",
    "SECRETS",
    "SIZE",
    "STR",
    "URL",
    "URLS",
    "Check",
    "Key",
    "Kind",
    "Problem",
    "above",
    "at_least",
    "choice",
    "format_size",
    "is_listen",
    "key",
    "parse_size",
    "pattern",
]

ENV_PREFIX = "KANMON_"


@dataclass(frozen=True)
class Kind:
    """How to parse one type of value from text or YAML, and how to show it again."""

    noun: str
    parse: Callable[[object], Any]
    show: Callable[[Any], str] = str
    redact: Callable[[str], str] = lambda text: text
    textual: bool = False  # YAML turns unquoted 1000 or 10:30 into numbers; errors then suggest quoting


class Problem(InvalidInput, ValueError):
    """Raised by a check that can say exactly what is wrong; its message replaces "expected …, got …"."""


@dataclass(frozen=True)
class Check:
    """A validator on an already parsed value; ``expect`` says what passes, e.g. ``a number > 0``.

    ``ok`` answers False for a value that does not pass, or raises :class:`Problem` to say more precisely why.
    """

    expect: str
    ok: Callable[[Any], bool]


@dataclass(frozen=True, kw_only=True)
class Key:
    """One configuration key: its dotted name, where it lands in ``Settings``, its type, default and doc."""

    name: str
    attr: str
    kind: Kind
    default: Any
    doc: str
    check: Check | None = None
    secret: bool = False
    in_file: bool = True

    @property
    def env(self) -> str:
        """The environment variable that sets this key, e.g. ``KANMON_STORE_URL`` for ``store.url``."""
        return ENV_PREFIX + self.name.upper().replace(".", "_")

    @property
    def expect(self) -> str:
        """What an acceptable value looks like, for error messages."""
        return self.check.expect if self.check else self.kind.noun

    def coerce(self, raw: object) -> Any:
        """Parse and validate ``raw``; raise ``ValueError`` or ``TypeError`` when it is not acceptable."""
        value = self.kind.parse(raw)
        if self.check and not self.check.ok(value):
            raise ValueError(self.name)
        return value

    def show(self, value: object) -> str:
        """Render a typed value for ``gated config show``: secrets are ``****`` when set, empty when not."""
        if self.secret:
            return "****" if value else ""
        return self.kind.redact(self.kind.show(value))

    def show_raw(self, raw: object) -> str:
        """Render a rejected raw value for an error message, never echoing a secret."""
        if self.secret:
            return "'****'"
        shown = self.kind.redact(repr(raw))
        if self.kind.textual and isinstance(raw, int | float):
            return f"the number {shown} (quote it in YAML)"
        return shown


def key(name: str, kind: Kind, default: Any, doc: str, **extra: Any) -> Key:
    """A :class:`Key` that lands in ``Settings`` under its own dotted name unless ``attr=`` says where."""
    attr = extra.pop("attr", name)
    return Key(name=name, attr=attr, kind=kind, default=default, doc=doc, **extra)


# --- kinds -----------------------------------------------------------------------------------------------------

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def _not_bool(raw: object) -> None:
    # bool is a subclass of int: `max_concurrent: true` must not quietly become 1.
    if isinstance(raw, bool):
        raise TypeError("bool")


def _parse_str(raw: object) -> str:
    if not isinstance(raw, str):
        raise TypeError(type(raw).__name__)
    return raw.strip()


def _parse_int(raw: object) -> int:
    _not_bool(raw)
    if isinstance(raw, int):
        return raw
    return int(_parse_str(raw), 10)


def _parse_float(raw: object) -> float:
    _not_bool(raw)
    value = float(raw) if isinstance(raw, int | float) else float(_parse_str(raw))
    if not math.isfinite(value):
        raise ValueError(raw)
    return value


def _parse_bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower() if isinstance(raw, int | str) else ""
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise ValueError(raw)


def _parse_path(raw: object) -> Path:
    text = str(raw) if isinstance(raw, Path) else _parse_str(raw)
    if not text:
        raise ValueError(raw)
    return Path(text).expanduser()


def _items(raw: object) -> list[str]:
    """A list from YAML, or a comma-separated string from the environment or a flag."""
    if isinstance(raw, str):
        return [part.strip() for part in raw.split(",") if part.strip()]
    if isinstance(raw, list | tuple):
        return [str(item) if isinstance(item, Path) else _parse_str(item) for item in raw]
    raise TypeError(type(raw).__name__)


def _parse_paths(raw: object) -> tuple[Path, ...]:
    paths = tuple(Path(item).expanduser() for item in _items(raw))
    if not all(path.is_absolute() for path in paths):
        raise ValueError(raw)
    return paths


def _parse_names(raw: object) -> tuple[str, ...]:
    """Names compared without case (tags, say), lower-cased, each kept once in its first place."""
    return tuple(dict.fromkeys(item.lower() for item in _items(raw)))


def _parse_globs(raw: object) -> tuple[str, ...]:
    """Sender globs (the router's Go ``path.Match`` rules, case kept), each once; a malformed one is refused."""
    globs = tuple(dict.fromkeys(_items(raw)))
    if not all(map(is_valid_glob, globs)):
        raise ValueError(raw)
    return globs


def _parse_mapping(raw: object) -> Mapping[str, str]:
    """A YAML mapping, or ``name=value,name=value`` from the environment or a flag; a name given twice is refused
    (the last one won, without a word: ``telegram=allowlist,telegram=open`` opened Telegram)."""
    if isinstance(raw, Mapping):
        pairs = [(_parse_str(name), _parse_str(value)) for name, value in raw.items()]
    else:
        split = [item.partition("=") for item in _items(raw)]
        if not all(sep for _, sep, _ in split):
            raise ValueError(raw)
        pairs = [(name.strip(), value.strip()) for name, _, value in split]
    mapping = dict(pairs)
    if len(mapping) < len(pairs) or not all(name and value for name, value in pairs):
        raise ValueError(raw)  # a name given twice: which one was meant? (YAML refuses it as well)
    return MappingProxyType(mapping)


def _parse_mount_roots(raw: object) -> tuple[AllowedMount, ...]:
    """Allowed mount roots: ``/srv/shared`` (read-only) or ``/srv/scratch:rw`` (groups may mount it writable)."""
    roots = []
    for item in _items(raw):
        path, sep, mode = item.rpartition(":")
        if not sep or mode not in ("ro", "rw"):
            path, mode = item, "ro"
        root = Path(path).expanduser()
        if not root.is_absolute():
            raise ValueError(item)
        roots.append(AllowedMount(root=root, writable=mode == "rw"))
    return tuple(roots)


def _show_mount_roots(roots: tuple[AllowedMount, ...]) -> str:
    return ",".join(f"{root.root}:rw" if root.writable else str(root.root) for root in roots)


def _parse_secrets(raw: object) -> Mapping[str, SecretSource]:
    """Secret sources: a YAML mapping ``NAME: {env: VAR}`` / ``NAME: {file: /path}``, or ``NAME=env:VAR,…`` as text."""
    if isinstance(raw, Mapping):
        pairs = list(raw.items())
    else:
        split = [item.partition("=") for item in _items(raw)]
        if not all(sep for _, sep, _ in split):
            raise ValueError(raw)
        pairs = [(name.strip(), source) for name, _, source in split]
    sources = {}
    for name, source in pairs:
        if not isinstance(name, str) or not is_secret_name(name):
            raise Problem(f"{name!r} is not a secret name (letters, digits and _, not starting with a digit)")
        try:
            sources[name] = parse_source(source)
        except ValueError as exc:
            raise Problem(f"secret {name}: {exc}") from None
    return MappingProxyType(sources)


def _show_secrets(sources: Mapping[str, SecretSource]) -> str:
    return ",".join(f"{name}={source}" for name, source in sources.items())


def parse_size(raw: object) -> int:
    """Bytes from an integer or a size like ``512m``, ``1g``, ``1.5GiB`` (binary units, as Docker uses)."""
    _not_bool(raw)
    if isinstance(raw, int):
        return raw
    match = _SIZE.fullmatch(_parse_str(raw))
    if match is None:
        raise ValueError(raw)
    number, unit = match.groups()
    return int(float(number) * _SIZE_UNITS[unit.lower()])


def format_size(size: int) -> str:
    """The shortest exact spelling of ``size`` bytes: ``1g``, ``512m``, ``1000``."""
    for unit in "tgmk":
        scale = _SIZE_UNITS[unit]
        if size and size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)


def choice(*options: str, fold: Callable[[str], str] = str.lower) -> Kind:
    def parse(raw: object) -> str:
        value = fold(_parse_str(raw))
        if value not in options:
            raise ValueError(raw)
        return value

    return Kind(f"one of {', '.join(options)}", parse)


def _show_mapping(value: Mapping[str, str]) -> str:
    return ",".join(f"{name}={target}" for name, target in value.items())


def _redact_url(text: str) -> str:
    """Hide the password of ``scheme://user:password@host`` URLs."""
    return _URL_PASSWORD.sub(r"\1****@", text)


STR = Kind("a string", _parse_str, textual=True)
INT = Kind("an integer", _parse_int)
FLOAT = Kind("a number", _parse_float)
BOOL = Kind("true or false", _parse_bool, show=lambda value: str(value).lower())
PATH = Kind("a non-empty path", _parse_path)
NAMES = Kind("names (a YAML list, or comma-separated)", _parse_names, show=",".join)
GLOBS = Kind("globs (a YAML list, or comma-separated)", _parse_globs, show=",".join)
PATHS = Kind("absolute paths (a YAML list, or comma-separated)", _parse_paths, show=lambda v: ",".join(map(str, v)))
MOUNT_ROOTS = Kind(
    "absolute paths, each PATH or PATH:rw (a YAML list, or comma-separated)", _parse_mount_roots, _show_mount_roots
)
SECRETS = Kind(
    "NAME: {env: VARIABLE} or NAME: {file: /path} (a YAML mapping), or NAME=env:VARIABLE,NAME=file:/path",
    _parse_secrets,
    _show_secrets,
)
SIZE = Kind("a size like 512m or 1g", parse_size, show=format_size)
URL = Kind("a URL", _parse_str, redact=_redact_url, textual=True)
URLS = Kind("name=URL pairs (a YAML mapping, or comma-separated)", _parse_mapping, _show_mapping, _redact_url)


# --- checks ----------------------------------------------------------------------------------------------------


def above(bound: float) -> Check:
    return Check(f"a number > {bound:g}", lambda value: value > bound)


def at_least(bound: int, noun: str = "an integer") -> Check:
    return Check(f"{noun} >= {bound}", lambda value: value >= bound)


def pattern(expect: str, regex: str) -> Check:
    compiled = re.compile(regex)
    return Check(expect, lambda value: compiled.fullmatch(value) is not None)


def is_listen(value: str) -> bool:
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    return bool(sep and host and port.isdigit() and 0 <= int(port) <= 65535 and " " not in host)


def is_non_root_user(value: str) -> bool:
    user = value.partition(":")[0]
    return bool(user) and user not in {"0", "root"} and " " not in value
