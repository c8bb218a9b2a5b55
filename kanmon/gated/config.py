"""Configuration loading (SPEC §13): defaults < YAML file < ``KANMON_*`` environment < command-line overrides.

:func:`load_settings` is the only function here that touches the outside world: it resolves the data dir and reads
the YAML file. The environment comes in as a mapping, so tests pass dicts. The result is a tree of frozen,
keyword-only dataclasses that the CLI hands to each component's constructor; nothing reads configuration globally.

Every rejected value raises one :class:`ConfigError` whose message is a single line naming the key, where the value
came from and what is wrong, e.g. ``config: poll_interval (from KANMON_POLL_INTERVAL): expected a number > 0, got
'abc'``.

Empty environment variables and ``None`` overrides count as unset (``KANMON_X=${X}`` in a compose file, a click
option left out); a YAML ``null`` also means "use the next layer down".
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kanmon.errors import InvalidInput, closest_name
from kanmon.gated.config_keys import KEYS, KEYS_BY_ENV, KEYS_BY_NAME
from kanmon.gated.config_kinds import ENV_PREFIX, Key, Problem
from kanmon.gated.config_privacy_keys import privacy_problem
from kanmon.gated.settings import (
    DEFAULT_SOURCE,
    AttachmentSettings,
    AuthSettings,
    ConfigEntry,
    CredentialProxySettings,
    DeliverySettings,
    DockerSettings,
    GatewaySettings,
    HookSettings,
    HttpSettings,
    ImpulseSettings,
    LogSettings,
    MatrixSettings,
    MediaSettings,
    PrivacySettings,
    QueueSettings,
    RuntimeSettings,
    SchedulerSettings,
    Settings,
    StoreSettings,
    TelegramSettings,
)

if TYPE_CHECKING:
    import yaml

__all__ = [
    "KEYS",
    "ConfigEntry",
    "ConfigError",
    "DeliverySettings",
    "DockerSettings",
    "GatewaySettings",
    "HttpSettings",
    "ImpulseSettings",
    "LogSettings",
    "QueueSettings",
    "RuntimeSettings",
    "Settings",
    "StoreSettings",
    "derive_instance",
    "load_settings",
    "render_config",
]

CONFIG_FILE_NAME = "kanmon.yaml"
ENVIRONMENT_SOURCE = "environment"
# KANMON_* variables of the project's own tooling (tests, scripts/services.sh): never read, never taken for typos.
TOOL_PREFIXES = ("KANMON_TEST_", "KANMON_SERVICES_")
OVERRIDE_SOURCE = "command line"
MIN_RUN_HEADROOM = 30.0  # SPEC §9: the hard timeout is at least idle + 30 s.


class ConfigError(InvalidInput):
    """Raised when a configuration file or value is not acceptable; the message is one line."""

    def __init__(self, problem: str, *, key: str | None = None, source: str | None = None) -> None:
        where = " ".join(part for part in (key, f"(from {source})" if key and source else source) if part)
        super().__init__(f"config: {where}: {problem}" if where else f"config: {problem}")
        self.key = key
        self.source = source
        self.problem = problem

    def __repr__(self) -> str:
        return f"ConfigError(key={self.key!r}, source={self.source!r}, problem={self.problem!r})"


def derive_instance(data_dir: Path) -> str:
    """The default instance name: ``k`` + the first 8 hex digits of sha256 of the data dir's absolute path."""
    return "k" + hashlib.sha256(str(data_dir).encode()).hexdigest()[:8]


def render_config(settings: Settings) -> str:
    """The table ``gated config show`` prints: key, value, source and doc, aligned, secrets masked."""
    rows = [("KEY", "VALUE", "SOURCE", "DOC"), *settings.describe()]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)), row[3]]) for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


# --- loading ---------------------------------------------------------------------------------------------------

Layer = dict[str, tuple[object, str]]  # key -> (raw value, source label)

# Where each section of the settings tree is built; deeper sections first, so parents receive built children.
_SECTIONS: tuple[tuple[str, type], ...] = (
    ("runtime.docker", DockerSettings),
    ("runtime", RuntimeSettings),
    ("store", StoreSettings),
    ("gateway", GatewaySettings),
    ("queue", QueueSettings),
    ("impulse", ImpulseSettings),
    ("http", HttpSettings),
    ("delivery", DeliverySettings),
    ("attachments", AttachmentSettings),
    ("media", MediaSettings),
    ("credential_proxy", CredentialProxySettings),
    ("scheduler", SchedulerSettings),
    ("auth", AuthSettings),
    ("privacy", PrivacySettings),
    ("hooks", HookSettings),
    ("log", LogSettings),
    ("telegram", TelegramSettings),
    ("matrix", MatrixSettings),
)


def load_settings(
    *,
    data_dir: str | None,
    config_path: str | None,
    environ: Mapping[str, str],
    overrides: Mapping[str, object],
) -> Settings:
    """Build the effective settings from defaults, the YAML file, ``KANMON_*`` variables and CLI overrides.

    ``data_dir`` is the ``--data-dir`` flag (None when not given); ``config_path`` the ``--config`` flag, whose file
    must exist, while ``<data_dir>/kanmon.yaml`` is read only if present. ``overrides`` maps dotted keys to values
    from other flags. Raises :class:`ConfigError`.
    """
    env = _environment_layer(environ)
    flags = _override_layer(overrides)
    if data_dir is not None:
        flags["data_dir"] = (data_dir, "--data-dir")
    root = _resolve_data_dir(env, flags)
    file = _file_layer(Path(config_path) if config_path is not None else None, root)
    values, sources = _merge((file, env, flags))
    values["data_dir"] = root
    if not values["instance"]:
        values["instance"], sources["instance"] = derive_instance(root), "derived from data_dir"
    _check_timeouts(values, sources)
    problem = privacy_problem(values)
    if problem is not None:
        raise ConfigError(problem, key="privacy.salt", source=sources.get("privacy.salt", DEFAULT_SOURCE))
    return _build(values, sources)


def _environment_layer(environ: Mapping[str, str]) -> Layer:
    for name, value in environ.items():
        if name.startswith(ENV_PREFIX) and name not in KEYS_BY_ENV and value.strip():
            meant = _misspelled_variable(name)
            if meant is not None:
                raise ConfigError(f"unknown variable (did you mean {meant}?)", key=name, source=ENVIRONMENT_SOURCE)
    return {key.name: (environ[key.env], key.env) for key in KEYS if environ.get(key.env, "").strip()}


def _misspelled_variable(name: str) -> str | None:
    """The variable ``name`` was surely meant to be, or None when it looks like a name of its own.

    Other tools have ``KANMON_*`` variables too (``KANMON_TEST_*`` of the tests, ``KANMON_SERVICES_*`` of
    scripts/services.sh, ``KANMON_DATA`` and ``KANMON_CHANNEL_SECRET`` of compose.yaml), so only a slip of the
    keyboard counts: after the prefix, at most one edit (a character dropped, added, wrong, or two swapped) from a
    key's variable, or two for a name of 8 characters or more. The tools' prefixes are never taken for a typo.
    """
    if name.startswith(TOOL_PREFIXES):
        return None
    typed = name.removeprefix(ENV_PREFIX)
    for key in KEYS:
        real = key.env.removeprefix(ENV_PREFIX)
        if _edits(typed, real) <= (2 if len(real) >= 8 else 1):
            return key.env
    return None


def _edits(a: str, b: str) -> int:
    """Optimal string alignment distance: single-character insertions, deletions, substitutions and swaps of two
    neighbours that turn ``a`` into ``b`` (difflib has ratios, not edit counts)."""
    before: list[int] = []
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b))
            if i > 1 and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                cost = min(cost, before[j - 2] + 1)
            current.append(cost)
        before, previous = previous, current
    return previous[-1]


def _override_layer(overrides: Mapping[str, object]) -> Layer:
    for name in overrides:
        if name not in KEYS_BY_NAME:
            raise ConfigError(f"unknown key{_suggest(name)}", key=name, source=OVERRIDE_SOURCE)
    return {name: (raw, OVERRIDE_SOURCE) for name, raw in overrides.items() if raw is not None}


def _resolve_data_dir(env: Layer, flags: Layer) -> Path:
    # The data dir is settled before any file is read, because the default file lives inside it.
    raw, source = flags.get("data_dir") or env.get("data_dir") or (KEYS_BY_NAME["data_dir"].default, DEFAULT_SOURCE)
    path: Path = _coerce(KEYS_BY_NAME["data_dir"], raw, source)
    resolved = path.resolve()
    if resolved.exists() and not resolved.is_dir():
        raise ConfigError(f"{resolved} exists and is not a directory", key="data_dir", source=source)
    return resolved


def _file_layer(explicit: Path | None, data_dir: Path) -> Layer:
    if explicit is None:
        path = data_dir / CONFIG_FILE_NAME
        return _read_yaml(path) if path.is_file() else {}
    if explicit.is_dir():
        raise ConfigError("is a directory; expected a YAML file", key=str(explicit), source="--config")
    if not explicit.is_file():
        raise ConfigError("file not found", key=str(explicit), source="--config")
    return _read_yaml(explicit)


def _read_yaml(path: Path) -> Layer:
    import yaml  # here: a gated without a config file never loads PyYAML (0.9 MiB of resident memory)

    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", source=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("not UTF-8 text", source=str(path)) from exc
    except yaml.MarkedYAMLError as exc:
        where = f"{path}:{exc.problem_mark.line + 1}" if exc.problem_mark else str(path)
        raise ConfigError(f"invalid YAML: {exc.problem or exc.context}", source=where) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", source=str(path)) from exc
    if data is None:  # an empty file, or only comments
        return {}
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"the top level must be a mapping of keys, got {type(data).__name__}", source=str(path))
    return _flatten(data, node, "", str(path))


def _flatten(data: Mapping[Any, Any], node: yaml.MappingNode, prefix: str, path: str) -> Layer:
    """Turn nested YAML sections into dotted keys, each with ``file:line`` as its source."""
    import yaml

    children = _children(node, prefix, path)
    layer: Layer = {}
    for part, raw in data.items():
        name = f"{prefix}{part}"
        line, child = children.get(str(part), (node.start_mark.line + 1, None))
        source = f"{path}:{line}"
        if name in KEYS_BY_NAME:
            layer.update(_leaf(KEYS_BY_NAME[name], raw, source))
        elif not _is_section(name):
            raise ConfigError(f"unknown key{_suggest(name)}", key=name, source=source)
        elif isinstance(raw, dict) and isinstance(child, yaml.MappingNode):
            layer.update(_flatten(raw, child, f"{name}.", path))
        elif raw is not None:  # a section left empty (all commented out) is fine; a scalar in its place is not
            raise ConfigError(f"is a section; expected a mapping of its keys, got {raw!r}", key=name, source=source)
    return layer


def _children(node: yaml.MappingNode, prefix: str, path: str) -> dict[str, tuple[int, yaml.Node]]:
    """Line number and value node of each key in a YAML mapping; a key given twice is an error, not last-wins."""
    import yaml

    children: dict[str, tuple[int, yaml.Node]] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            continue  # a complex key; it fails as an unknown key in _flatten
        line = key_node.start_mark.line + 1
        if key_node.value in children:
            raise ConfigError("given twice", key=f"{prefix}{key_node.value}", source=f"{path}:{line}")
        children[str(key_node.value)] = (line, value_node)
    return children


def _leaf(key: Key, raw: object, source: str) -> Layer:
    if not key.in_file:
        raise ConfigError(f"cannot be set in a config file; use a flag or {key.env}", key=key.name, source=source)
    return {} if raw is None else {key.name: (raw, source)}


def _is_section(name: str) -> bool:
    return any(key.name.startswith(f"{name}.") for key in KEYS)


def _suggest(name: str) -> str:
    close = closest_name(str(name), (key.name for key in KEYS))
    return f" (did you mean {close}?)" if close else ""


def _merge(layers: tuple[Layer, ...]) -> tuple[dict[str, Any], dict[str, str]]:
    """Coerce every raw value, later layers winning; an invalid value fails even when a later layer overrides it."""
    values: dict[str, Any] = {key.name: key.default for key in KEYS}
    sources: dict[str, str] = {}
    for layer in layers:
        for name, (raw, source) in layer.items():
            values[name] = _coerce(KEYS_BY_NAME[name], raw, source)
            sources[name] = source
    return values, sources


def _coerce(key: Key, raw: object, source: str) -> Any:
    try:
        return key.coerce(raw)
    except Problem as exc:
        raise ConfigError(str(exc), key=key.name, source=source) from exc
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"expected {key.expect}, got {key.show_raw(raw)}", key=key.name, source=source) from exc


def _check_timeouts(values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    idle, hard = values["idle_timeout"], values["timeout"]
    if hard < idle + MIN_RUN_HEADROOM:
        idle_source = sources.get("idle_timeout", DEFAULT_SOURCE)
        raise ConfigError(
            f"must be at least idle_timeout + {MIN_RUN_HEADROOM:g} s = {idle + MIN_RUN_HEADROOM:g} "
            f"(idle_timeout is {idle:g} from {idle_source}), got {hard:g}",
            key="timeout",
            source=sources.get("timeout", DEFAULT_SOURCE),
        )


def _build(values: Mapping[str, Any], sources: Mapping[str, str]) -> Settings:
    """Place each key's value at its ``attr`` path and build the sections, innermost first."""
    fields: dict[str, dict[str, Any]] = {"": {}}
    for key in KEYS:
        section, _, attr = key.attr.rpartition(".")
        fields.setdefault(section, {})[attr] = values[key.name]
    for section, cls in _SECTIONS:
        parent, _, attr = section.rpartition(".")
        fields.setdefault(parent, {})[attr] = cls(**fields.pop(section, {}))
    return Settings(**fields[""], sources=dict(sources))
