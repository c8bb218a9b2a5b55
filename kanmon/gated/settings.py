"""The typed settings tree: frozen, keyword-only dataclasses that gated builds once and hands to each component.

Every field's default comes from the key table (:mod:`kanmon.gated.config_keys`), so ``GatewaySettings()`` in a test
means the same as an empty configuration. :func:`kanmon.gated.config.load_settings` builds the real thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

from kanmon.container.agent_secrets import SecretSource
from kanmon.container.base import AllowedMount
from kanmon.gated.config_keys import KEYS, KEYS_BY_NAME
from kanmon.gated.config_kinds import URL, URLS
from kanmon.gateway.hooks import HookConfig
from kanmon.gateway.upstreams import Upstream
from kanmon.router import ImpulseConfig

__all__ = [
    "DEFAULT_SOURCE",
    "AttachmentSettings",
    "AuthSettings",
    "ConfigEntry",
    "DeliverySettings",
    "DockerSettings",
    "GatewaySettings",
    "HookSettings",
    "HttpSettings",
    "ImpulseSettings",
    "LogSettings",
    "MatrixSettings",
    "MediaSettings",
    "PrivacySettings",
    "QueueSettings",
    "RuntimeSettings",
    "SchedulerSettings",
    "Settings",
    "StoreSettings",
    "TelegramSettings",
    "browser_url",
]

DEFAULT_SOURCE = "default"


def _default(name: str) -> Any:
    return KEYS_BY_NAME[name].default


@dataclass(frozen=True, kw_only=True)
class StoreSettings:
    """Where the store is and how connections behave (SPEC §3)."""

    url: str = field(default=_default("store.url"), repr=False)  # may carry a password
    busy_timeout_ms: int = _default("store.busy_timeout_ms")
    pool_size: int = _default("store.pool_size")
    lock_check_interval: float = _default("store.lock_check_interval")
    min_free_bytes: int = _default("store.min_free_space")


@dataclass(frozen=True, kw_only=True)
class GatewaySettings:
    """The message loop (SPEC §5), sessions (§10), onboarding (§11) and graceful stop (§14)."""

    poll_interval: float = _default("poll_interval")
    watch_interval: float = _default("watch_interval")
    poll_batch: int = _default("poll_batch")
    drain_timeout: float = _default("drain_timeout")
    session_idle_expiry: float = _default("session_idle_expiry")
    session_reset: str = _default("session_reset")
    session_reset_hour: int = _default("session_reset_hour")
    session_flush_prompt: str = _default("session_flush_prompt")
    session_flush_timeout: float = _default("session_flush_timeout")
    session_watch_interval: float = _default("session_watch_interval")
    onboarding: bool = _default("onboarding.enabled")


@dataclass(frozen=True, kw_only=True)
class QueueSettings:
    """The global cap and retry policy of the group queue (SPEC §8)."""

    max_concurrent: int = _default("max_concurrent")
    max_attempts: int = _default("max_attempts")
    retry_base_delay: float = _default("retry_base_delay")


@dataclass(frozen=True, kw_only=True)
class ImpulseSettings:
    """Default impulse gate parameters; routes may override them (SPEC §7)."""

    threshold: int = _default("impulse.threshold")
    max_hold_ms: int = _default("impulse.max_hold_ms")

    def config(self) -> ImpulseConfig:
        """These defaults as the gate's config, which a route's ``impulse_config`` is merged over."""
        return ImpulseConfig(threshold=self.threshold, max_hold_ms=self.max_hold_ms)


@dataclass(frozen=True, kw_only=True)
class DockerSettings:
    """Defaults for agent containers on the docker runtime (SPEC §9)."""

    image: str = _default("runtime.docker.image")
    network: str = _default("runtime.docker.network")
    memory_bytes: int = _default("runtime.docker.memory")
    cpus: float = _default("runtime.docker.cpus")
    pids_limit: int = _default("runtime.docker.pids_limit")
    user: str = _default("runtime.docker.user")


@dataclass(frozen=True, kw_only=True)
class RuntimeSettings:
    """Which runtime runs agents, and the limits every run gets (SPEC §9)."""

    default: str = _default("runtime.default")
    idle_timeout: float = _default("idle_timeout")
    timeout: float = _default("timeout")
    stop_grace: float = _default("stop_grace")
    output_cap_bytes: int = _default("runtime.output_cap")
    max_replies: int = _default("runtime.max_replies")
    mount_allowlist: tuple[AllowedMount, ...] = _default("runtime.mount_allowlist")
    reasoning_tags: tuple[str, ...] = _default("runtime.reasoning_tags")
    docker: DockerSettings = field(default_factory=DockerSettings)


def browser_url(host: str, port: int | str) -> str:
    """``http://host:port`` as a browser on this machine reaches an HTTP server listening on ``host``: a wildcard
    address (``0.0.0.0``, ``::``, empty) as the loopback of its family, an IPv6 address in brackets."""
    reachable = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104 - compared
    shown = f"[{reachable}]" if ":" in reachable else reachable
    return f"http://{shown}:{port}"


@dataclass(frozen=True, kw_only=True)
class HttpSettings:
    """The HTTP surface: adapter API, web chat, metrics and health (SPEC §11, §12)."""

    listen: str = _default("http.listen")
    public_url: str = _default("http.public_url")
    max_body_bytes: int = _default("http.max_body_bytes")
    channel_secret: str = field(default=_default("http.channel_secret"), repr=False)
    trusted_sender_header: str = _default("http.trusted_sender_header")
    openai_timeout: float = _default("openai.timeout")

    @property
    def host(self) -> str:
        """The host part of ``listen``, without IPv6 brackets."""
        return self.listen.rpartition(":")[0].removeprefix("[").removesuffix("]")

    @property
    def port(self) -> int:
        """The port part of ``listen`` (0 = any free port)."""
        return int(self.listen.rpartition(":")[2])

    @property
    def local_url(self) -> str:
        """``http://host:port`` of ``listen`` as a browser on this machine reaches it (:func:`browser_url`). With port
        0 (chosen at start) the port reads ``PORT``."""
        return browser_url(self.host, self.port or "PORT")

    def link_base(self, served: str | None = None) -> str:
        """Where links to gated's pages point: ``public_url`` when set (what people outside reach), else ``served``
        (the address the running gated recorded), else :attr:`local_url`."""
        return (self.public_url or served or self.local_url).rstrip("/")


@dataclass(frozen=True, kw_only=True)
class DeliverySettings:
    """Outbound delivery to channel adapters and daemon targets (SPEC §11)."""

    deadline: float = _default("delivery.deadline")
    retry_base_delay: float = _default("delivery.retry_base_delay")
    request_timeout: float = _default("delivery.request_timeout")
    chats_at_once: int = _default("delivery.chats_at_once")
    typing_interval: float = _default("delivery.typing_interval")


@dataclass(frozen=True, kw_only=True)
class AttachmentSettings:
    """Files that come with inbound messages (issue 14): size cap and how their urls are fetched."""

    max_bytes: int = _default("attachments.max_bytes")
    fetch_timeout: float = _default("attachments.fetch_timeout")
    fetch_attempts: int = _default("attachments.fetch_attempts")
    allow_private: tuple[str, ...] = _default("attachments.allow_private")


@dataclass(frozen=True, kw_only=True)
class MediaSettings:
    """Files agents send (issue 14, item 4): sizes in bytes, the download links' lifetime and base URL."""

    max_bytes: int = _default("media.max_bytes")
    inline_bytes: int = _default("media.inline_bytes")
    url_ttl: float = _default("media.url_ttl")
    public_url: str = _default("media.public_url")


@dataclass(frozen=True, kw_only=True)
class CredentialProxySettings:
    """APIs agents reach through gated's credential proxy (issue 19), which adds their keys."""

    upstreams: Mapping[str, Upstream] = field(default_factory=lambda: _default("credential_proxy.upstreams"))
    port: int = _default("credential_proxy.port")
    agent_host: str = _default("credential_proxy.agent_host")


@dataclass(frozen=True, kw_only=True)
class AuthSettings:
    """Sender authorisation and DM pairing (issue 16 item 1, :mod:`kanmon.gateway.auth`); times in seconds."""

    mode: str = _default("auth.mode")
    platforms: Mapping[str, str] = field(default_factory=lambda: _default("auth.platforms"))
    pairing: bool = _default("auth.pairing")
    pairing_ttl: float = _default("auth.pairing_ttl")
    pairing_window: float = _default("auth.pairing_window")
    pairing_max_pending: int = _default("auth.pairing_max_pending")
    operators: tuple[str, ...] = _default("auth.operators")


@dataclass(frozen=True, kw_only=True)
class PrivacySettings:
    """PII redaction in prompts (issue 16 item 5, :mod:`kanmon.gateway.privacy`)."""

    redact: tuple[str, ...] = _default("privacy.redact")
    salt: str = _default("privacy.salt")  # a secret's name, not its value
    redact_names: bool = _default("privacy.redact_names")


@dataclass(frozen=True, kw_only=True)
class HookSettings:
    """Lifecycle hooks of trusted local plugins (issue 16 item 6, :mod:`kanmon.gateway.hooks`)."""

    modules: tuple[str, ...] = _default("hooks.modules")
    entry_points: bool = _default("hooks.entry_points")
    timeout: float = _default("hooks.timeout")

    def config(self) -> HookConfig:
        """Which hook plugins gated loads: what ``gated run`` and ``gated hooks list`` both read."""
        return HookConfig(modules=self.modules, entry_points=self.entry_points, timeout=self.timeout)


@dataclass(frozen=True, kw_only=True)
class SchedulerSettings:
    """Scheduled tasks (issue 15, :mod:`kanmon.gateway.scheduler`)."""

    timezone: str = _default("scheduler.timezone")
    interval: float = _default("scheduler.interval")
    grace: float = _default("scheduler.grace")
    catch_up: int = _default("scheduler.catch_up")


@dataclass(frozen=True, kw_only=True)
class TelegramSettings:
    """The Telegram adapter, ``gated adapter telegram`` (:mod:`kanmon.adapters.telegram`)."""

    bot_token: str = field(default=_default("telegram.bot_token"), repr=False)
    name: str = _default("telegram.name")
    listen: str = _default("telegram.listen")
    url: str = _default("telegram.url")
    gated_url: str = _default("telegram.gated_url")
    api_url: str = _default("telegram.api_url")
    state_dir: str = _default("telegram.state_dir")
    poll_timeout: float = _default("telegram.poll_timeout")
    typing_limit: float = _default("telegram.typing_limit")


@dataclass(frozen=True, kw_only=True)
class MatrixSettings:
    """The Matrix adapter, a process of its own (``gated adapter matrix``, :mod:`kanmon.adapters.matrix`)."""

    homeserver: str = _default("matrix.homeserver")
    user_id: str = _default("matrix.user_id")
    access_token: str = field(default=_default("matrix.access_token"), repr=False)
    password: str = field(default=_default("matrix.password"), repr=False)
    allowed_inviters: tuple[str, ...] = _default("matrix.allowed_inviters")
    listen: str = _default("matrix.listen")
    url: str = _default("matrix.url")
    gated_url: str = _default("matrix.gated_url")
    max_message_bytes: int = _default("matrix.max_message_bytes")


@dataclass(frozen=True, kw_only=True)
class LogSettings:
    """Logging level and line format."""

    level: str = _default("log.level")
    format: str = _default("log.format")
    access: bool = _default("log.access")


@dataclass(frozen=True, kw_only=True)
class MetricsSettings:
    """What /metrics exports (issue 18 item 5)."""

    max_folders: int = _default("metrics.max_folders")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The whole effective configuration of one gated; ``sources`` says where each non-default key came from."""

    data_dir: Path
    instance: str
    host_data_dir: str = _default("host_data_dir")
    assistant_name: str = _default("assistant_name")
    store: StoreSettings = field(default_factory=StoreSettings)
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    impulse: ImpulseSettings = field(default_factory=ImpulseSettings)
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    attachments: AttachmentSettings = field(default_factory=AttachmentSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    credential_proxy: CredentialProxySettings = field(default_factory=CredentialProxySettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    hooks: HookSettings = field(default_factory=HookSettings)
    log: LogSettings = field(default_factory=LogSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    telegram: TelegramSettings = field(default_factory=TelegramSettings)
    matrix: MatrixSettings = field(default_factory=MatrixSettings)
    daemons: Mapping[str, str] = field(default_factory=lambda: _default("daemons"))
    #: Where each agent secret's value is read (names and sources only: values are read at each run's start).
    secrets: Mapping[str, SecretSource] = field(default_factory=lambda: _default("secrets"))
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def store_url(self) -> str:
        """The database URL to connect to: ``store.url``, or the SQLite file in the data dir when it is empty."""
        return self.store.url or f"sqlite:///{self.data_dir / 'kanmon.db'}"

    @property
    def host_data_path(self) -> Path:
        """The data dir as the Docker host sees it (for bind mounts): ``host_data_dir`` or else ``data_dir``."""
        return Path(self.host_data_dir) if self.host_data_dir else self.data_dir

    def value(self, key: str) -> Any:
        """The typed value of a dotted configuration key, e.g. ``value("store.url")``."""
        node: Any = self
        for part in KEYS_BY_NAME[key].attr.split("."):
            node = getattr(node, part)
        return node

    def secret_values(self) -> list[str]:
        """Every secret these settings hold, for the log redaction (SPEC §14): the values of the keys marked secret
        (``http.channel_secret``) and the passwords in URLs (``store.url``, ``daemons``), also percent-decoded."""
        found: list[str] = []
        for key in KEYS:
            value = self.value(key.name)
            if key.secret and value:
                found.append(str(value))
            elif key.kind is URL or key.kind is URLS:
                urls = value.values() if isinstance(value, Mapping) else [value]
                for password in filter(None, map(_url_password, urls)):
                    found.extend(dict.fromkeys([password, unquote(password)]))
        return found

    def describe(self) -> list[ConfigEntry]:
        """Every key with its shown value (secrets masked), its source and its doc, in table order."""
        return [
            ConfigEntry(key.name, key.show(self.value(key.name)), self.sources.get(key.name, DEFAULT_SOURCE), key.doc)
            for key in KEYS
        ]


class ConfigEntry(NamedTuple):
    """One row of ``gated config show``."""

    key: str
    value: str
    source: str
    doc: str


def _url_password(url: object) -> str | None:
    try:
        return urlsplit(str(url)).password
    except ValueError:
        return None
