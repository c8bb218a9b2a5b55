"""The configuration key table (SPEC §13): every setting kanmon reads, with its type, default, doc and validator.

Defaults are stored already typed, exactly as they land in :class:`kanmon.gated.settings.Settings`, so this table is
the single source of truth for them. ``attr`` says where a key's value lives in the settings tree: the top-level key
``poll_interval``, for instance, is ``settings.gateway.poll_interval``. Every key is also an environment variable,
``KANMON_`` + the key upper-cased with ``.`` turned into ``_`` (``store.url`` is ``KANMON_STORE_URL``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit

from kanmon.container.base import is_agent_user
from kanmon.container.protocol import REASONING_TAGS, is_reasoning_tag
from kanmon.gated.config_adapter_keys import ADAPTER_KEYS
from kanmon.gated.config_attachment_keys import ATTACHMENT_KEYS
from kanmon.gated.config_auth_keys import AUTH_KEYS
from kanmon.gated.config_delivery_keys import DELIVERY_KEYS
from kanmon.gated.config_kinds import (
    BOOL,
    FLOAT,
    INT,
    MOUNT_ROOTS,
    NAMES,
    PATH,
    SECRETS,
    SIZE,
    STR,
    URL,
    URLS,
    Check,
    Key,
    Problem,
    above,
    at_least,
    choice,
    is_listen,
    key,
    pattern,
)
from kanmon.gated.config_media_keys import MEDIA_KEYS
from kanmon.gated.config_observe_keys import OBSERVE_KEYS
from kanmon.gated.config_privacy_keys import HOOK_KEYS, PRIVACY_KEYS
from kanmon.gated.config_proxy_keys import PROXY_KEYS
from kanmon.gated.config_scheduler_keys import SCHEDULER_KEYS
from kanmon.gated.config_session_keys import IDLE_EXPIRY, SESSION_KEYS
from kanmon.router import is_daemon_name
from kanmon.router.impulse import MAX_HOLD_MS
from kanmon.store import SUPPORTED_URLS, is_url, url_problem

__all__ = ["KEYS", "KEYS_BY_ENV", "KEYS_BY_NAME"]

_NON_NEGATIVE = at_least(0, "a number")
_NON_NEGATIVE_INT = at_least(0)
_POSITIVE_INT = at_least(1)
_POSITIVE = above(0)
_MIN_MEMORY = 6 << 20  # Docker refuses a memory limit below 6 MiB.
_HTTP_URL = pattern("an http:// or https:// URL, or empty", r"(https?://\S+)?")
_LISTEN = Check("host:port like 127.0.0.1:8090", is_listen)


def _daemons_ok(daemons: Mapping[str, str]) -> bool:
    """Every name a valid ``daemon:<name>`` target (SPEC §6.4) and every URL one kanmon can POST to."""
    return all(is_daemon_name(name) and _http_url_ok(url) for name, url in daemons.items())


def _http_url_ok(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _store_url_ok(url: str) -> bool:
    """Empty, or a URL kanmon can use; a URL of the wrong kind says which one to write instead (:class:`Problem`)."""
    if not url:
        return True
    if not is_url(url):
        return False
    problem = url_problem(url)
    if problem is not None:
        raise Problem(problem)
    return True


KEYS: tuple[Key, ...] = (
    key(
        "data_dir",
        PATH,
        Path("kanmon-data"),
        "Where the store, group folders and runs live (--data-dir).",
        in_file=False,
    ),
    key(
        "instance",
        STR,
        "",
        "Name on containers and locks; empty = 'k' + 8 hex of sha256(absolute data_dir).",
        check=pattern("lowercase letters, digits and '-' (at most 32), or empty", r"([a-z0-9][a-z0-9-]{0,31})?"),
    ),
    key(
        "host_data_dir",
        STR,
        "",
        "The data dir as the Docker host sees it, when gated itself runs in a container.",
        check=pattern("an absolute path, or empty", r"(/.*)?"),
    ),
    key(
        "assistant_name",
        STR,
        "kanmon",
        "The assistant's name handed to agents (assistantName, SPEC §9).",
        check=pattern("a non-empty name", r".+"),
    ),
    key(
        "store.url",
        URL,
        "",
        "Database URL; empty = sqlite:///<data_dir>/kanmon.db (or postgresql+psycopg://…).",
        check=Check(f"a URL like {SUPPORTED_URLS}, or empty", lambda url: _store_url_ok(url)),
    ),
    key(
        "store.busy_timeout_ms",
        INT,
        30000,
        "How long an SQLite writer waits for the lock, in milliseconds.",
        check=_NON_NEGATIVE_INT,
    ),
    key("store.pool_size", INT, 5, "Database connections kept in the pool.", check=_POSITIVE_INT),
    key(
        "store.min_free_space",
        SIZE,
        64 << 20,
        "Below this much free disk beside an SQLite store, /readyz says not ready (0 = never).",
        attr="store.min_free_bytes",
    ),
    key(
        "store.lock_check_interval",
        FLOAT,
        1.0,
        "Seconds between checks that gated still holds its store lock; also a standby's retry interval.",
        check=_POSITIVE,
    ),
    key(
        "poll_interval",
        FLOAT,
        2.0,
        "Seconds between two polls of the store (SPEC §5).",
        check=_POSITIVE,
        attr="gateway.poll_interval",
    ),
    key(
        "watch_interval",
        FLOAT,
        0.25,
        "Seconds between checks for messages another process stored (gated send); 0: wait for the next poll.",
        check=_NON_NEGATIVE,
        attr="gateway.watch_interval",
    ),
    key(
        "poll_batch",
        INT,
        200,
        "Most messages read from the store per poll.",
        check=_POSITIVE_INT,
        attr="gateway.poll_batch",
    ),
    key(
        "drain_timeout",
        FLOAT,
        30.0,
        "Seconds a graceful stop waits for running runs before leaving them running.",
        check=_NON_NEGATIVE,
        attr="gateway.drain_timeout",
    ),
    key(
        "session_idle_expiry",
        FLOAT,
        0.0,
        "Seconds after which an idle session starts fresh; 0 = never.",
        check=IDLE_EXPIRY,
        attr="gateway.session_idle_expiry",
    ),
    *SESSION_KEYS,
    key(
        "onboarding.enabled",
        BOOL,
        False,
        "Put chats with no owner on a pending list for /approve (SPEC §11).",
        attr="gateway.onboarding",
    ),
    key(
        "max_concurrent",
        INT,
        5,
        "Most agent runs at the same time, over all lanes (SPEC §8).",
        check=_POSITIVE_INT,
        attr="queue.max_concurrent",
    ),
    key(
        "max_attempts",
        INT,
        3,
        "Tries of a failing batch before it is dead-lettered.",
        check=_POSITIVE_INT,
        attr="queue.max_attempts",
    ),
    key(
        "retry_base_delay",
        FLOAT,
        5.0,
        "Seconds before the first retry of a failed run; doubles each time.",
        check=_NON_NEGATIVE,
        attr="queue.retry_base_delay",
    ),
    key(
        "impulse.threshold",
        INT,
        100,
        "Accumulated verb weight at which held messages fire (SPEC §7).",
        check=_POSITIVE_INT,
    ),
    key(
        "impulse.max_hold_ms",
        INT,
        300000,
        "Longest a held message waits, counted from the first one held.",
        check=Check(f"an integer from 0 to {MAX_HOLD_MS} (a week)", lambda value: 0 <= value <= MAX_HOLD_MS),
    ),
    key(
        "idle_timeout",
        FLOAT,
        1800.0,
        "Seconds without output (heartbeats count) before a run is stopped.",
        check=_POSITIVE,
        attr="runtime.idle_timeout",
    ),
    key(
        "timeout",
        FLOAT,
        3600.0,
        "Hard limit on a run in seconds; at least idle_timeout + 30.",
        check=_POSITIVE,
        attr="runtime.timeout",
    ),
    key(
        "stop_grace",
        FLOAT,
        10.0,
        "Seconds between SIGTERM and kill when a run is stopped.",
        check=_NON_NEGATIVE,
        attr="runtime.stop_grace",
    ),
    key("runtime.default", choice("docker", "process"), "docker", "Runtime of groups that do not name one."),
    key(
        "runtime.output_cap",
        SIZE,
        10 << 20,
        "Most agent stdout kept per run; beyond it the run is killed.",
        check=at_least(1 << 10, "a size like 512k or 10m, at least 1k"),
        attr="runtime.output_cap_bytes",
    ),
    key(
        "runtime.max_replies",
        INT,
        500,
        "Replies one run may send; the run is stopped when it reaches this many.",
        check=at_least(1, "an integer, at least 1"),
    ),
    key(
        "runtime.mount_allowlist",
        MOUNT_ROOTS,
        (),
        "Host roots groups may mount (--mount), read-only; PATH:rw lets them mount it writable.",
    ),
    key(
        "runtime.reasoning_tags",
        NAMES,
        REASONING_TAGS,
        "Tags whose sections (hidden reasoning) never reach a chat (SPEC §9).",
        check=Check("tag names like think,reasoning", lambda names: all(map(is_reasoning_tag, names))),
    ),
    key(
        "runtime.docker.image",
        STR,
        "kanmon-agent:latest",
        "Agent image of groups that do not name one.",
        check=pattern("an image reference like kanmon-agent:latest", r"\S+"),
    ),
    key(
        "runtime.docker.network",
        STR,
        "none",
        "Docker network of groups that do not name one.",
        check=pattern("a network name like none or bridge", r"\S+"),
    ),
    key(
        "runtime.docker.memory",
        SIZE,
        1 << 30,
        "Memory limit per agent container.",
        check=Check("a size like 512m or 1g, at least 6m", lambda size: size >= _MIN_MEMORY),
        attr="runtime.docker.memory_bytes",
    ),
    key("runtime.docker.cpus", FLOAT, 1.0, "CPUs per agent container.", check=_POSITIVE),
    key("runtime.docker.pids_limit", INT, 256, "Most processes inside one agent container.", check=_POSITIVE_INT),
    key(
        "runtime.docker.user",
        STR,
        "1000:1000",
        "User (uid[:gid]) agents run as, owner of their group folders; not root.",
        check=Check("a non-root user[:group] like 1000:1000", is_agent_user),
    ),
    key(
        "http.listen",
        STR,
        "127.0.0.1:8080",
        "Address of the HTTP surface: adapters, web chat, /metrics.",
        check=Check("host:port like 127.0.0.1:8080", is_listen),
    ),
    key(
        "http.public_url",
        STR,
        "",
        "Origin web chat links name (behind a reverse proxy), e.g. https://chat.example.org; empty = gated's.",
        check=pattern("an http:// or https:// origin without a path, or empty", r"(https?://[^/\s?#@]+/?)?"),
    ),
    key(
        "http.max_body_bytes", INT, 1 << 20, "Largest request body accepted; bigger ones get 413.", check=_POSITIVE_INT
    ),
    key(
        "http.channel_secret",
        STR,
        "",
        "Shared secret adapters present to register (SPEC §11); empty = closed.",
        secret=True,
    ),
    key(
        "http.trusted_sender_header",
        STR,
        "",
        "Header a trusted proxy sets to the web sender's id; empty = none.",
        check=pattern("an HTTP header name like X-Remote-User, or empty", r"[A-Za-z0-9-]*"),
    ),
    key(
        "openai.timeout",
        FLOAT,
        300.0,
        "Seconds /v1/chat/completions waits for the agent before 504 (the run goes on into the store).",
        check=_POSITIVE,
        attr="http.openai_timeout",
    ),
    *DELIVERY_KEYS,
    *ATTACHMENT_KEYS,
    key(
        "daemons",
        URLS,
        MappingProxyType({}),
        "URLs of daemon:<name> route targets, as name=URL; each routed message is POSTed there.",
        check=Check("name=URL pairs: daemon names like my-hook, http(s) URLs with a host", lambda d: _daemons_ok(d)),
    ),
    *MEDIA_KEYS,
    *PROXY_KEYS,
    *AUTH_KEYS,
    key(
        "secrets",
        SECRETS,
        MappingProxyType({}),
        "Agent secrets by name: where each value is read (env: VAR or file: PATH); values never shown.",
    ),
    *SCHEDULER_KEYS,
    *PRIVACY_KEYS,
    *HOOK_KEYS,
    *ADAPTER_KEYS,
    *OBSERVE_KEYS,
)

KEYS_BY_NAME: Mapping[str, Key] = MappingProxyType({key.name: key for key in KEYS})
KEYS_BY_ENV: Mapping[str, Key] = MappingProxyType({key.env: key for key in KEYS})
