"""The APIs agents reach through gated's credential proxy (issue 19), and what a run gets to reach them.

An :class:`Upstream` is one API: its real base URL, the header that carries the key and how, the secret that
supplies the key, and the variables an agent's SDK reads for its base URL and key. ``anthropic`` and ``openai``
come preset, so ``credential_proxy.upstreams: {anthropic: {secret: ANTHROPIC_API_KEY}}`` is a whole entry.

A group opts in per upstream (``gated group set F --upstream anthropic``). When one of its runs starts,
:class:`CredentialGrants` gives it, in its environment, the base-URL variable pointing at the proxy (on the address
the run's runtime reaches this machine by) and a run token as the key (not a secret: see
:mod:`kanmon.gateway.run_tokens`); the real key stays with gated.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from dataclasses import replace as dataclass_replace
from types import MappingProxyType
from typing import Protocol
from urllib.parse import urlsplit

from kanmon.container import InvalidRunSpec, RunSpec
from kanmon.container.events import Usage
from kanmon.gateway.proxy_usage import TokenCounts
from kanmon.gateway.run_tokens import RunTokens
from kanmon.store import Group

__all__ = ["PRESETS", "CredentialGrants", "ProxyConfig", "Upstream", "group_upstreams", "parse_upstreams"]

_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEADER = re.compile(r"[A-Za-z0-9-]{1,64}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Upstream:
    """One API the proxy reaches (``credential_proxy.upstreams.<name>`` in kanmon.yaml).

    ``header``/``template``: where and how the key goes (``x-api-key`` + ``{secret}``, or ``authorization`` +
    ``Bearer {secret}``); ``secret``: the name in the ``secrets:`` section that supplies it; ``base_url_env`` and
    ``key_env``: the variables the agent's SDK reads (``ANTHROPIC_BASE_URL``/``ANTHROPIC_API_KEY``).
    """

    name: str
    base_url: str
    secret: str
    header: str = "x-api-key"
    template: str = "{secret}"
    base_url_env: str = ""
    key_env: str = ""

    def agent_env(self, proxy_url: str, token: str) -> dict[str, str]:
        """The variables a run gets for this upstream: the proxy's URL for it and the run's token (not a secret)."""
        env = {}
        if self.base_url_env:
            env[self.base_url_env] = f"{proxy_url.rstrip('/')}/{self.name}"
        if self.key_env:
            env[self.key_env] = token
        return env


#: What ``anthropic`` and ``openai`` mean unless the configuration says otherwise (the SDKs' documented variables).
#: ``secret`` is the name of an entry of the ``secrets:`` section, never a value.
PRESETS: Mapping[str, Upstream] = MappingProxyType(
    {
        "anthropic": Upstream(
            name="anthropic", base_url="https://api.anthropic.com", secret="ANTHROPIC_API_KEY",  # noqa: S106
            base_url_env="ANTHROPIC_BASE_URL", key_env="ANTHROPIC_API_KEY",
        ),
        "openai": Upstream(
            name="openai", base_url="https://api.openai.com/v1", secret="OPENAI_API_KEY",  # noqa: S106
            header="authorization",
            template="Bearer {secret}", base_url_env="OPENAI_BASE_URL", key_env="OPENAI_API_KEY",
        ),
    }
)  # fmt: skip
_FIELDS = {field.name for field in fields(Upstream)} - {"name"}


def parse_upstreams(raw: object) -> Mapping[str, Upstream]:
    """``credential_proxy.upstreams`` from its YAML mapping ``{name: {base_url, secret, header, template,
    base_url_env, key_env}}`` (a preset fills what is left out). Raises ``ValueError`` with one line."""
    if not isinstance(raw, Mapping):
        raise ValueError("a mapping of upstream names to their settings")
    found: dict[str, Upstream] = {}
    for name, settings in raw.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not an upstream name (a-z, digits, _ and -, at most 32)")
        if not isinstance(settings, Mapping) or not all(isinstance(v, str) for v in settings.values()):
            raise ValueError(f"upstream {name}: a mapping of {sorted(_FIELDS)} to strings")
        unknown = set(settings) - _FIELDS
        if unknown:
            raise ValueError(f"upstream {name}: unknown setting(s) {sorted(unknown)}")
        base = PRESETS.get(name)
        if base is None and not {"base_url", "secret"} <= set(settings):
            raise ValueError(f"upstream {name}: base_url and secret are required (only anthropic, openai are preset)")
        upstream = replace(base or Upstream(name=name, base_url="", secret=""), **dict(settings))
        found[name] = _checked(upstream)
    return MappingProxyType(found)


def _checked(upstream: Upstream) -> Upstream:
    where = f"upstream {upstream.name}"
    url = urlsplit(upstream.base_url)
    if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment or "@" in url.netloc:
        raise ValueError(f"{where}: base_url must be an http(s) URL without credentials, query or fragment")
    if not _HEADER.fullmatch(upstream.header) or upstream.template.count("{secret}") != 1:
        raise ValueError(f"{where}: header must be a header name and template hold {{secret}} once")
    for value in (upstream.secret, upstream.base_url_env, upstream.key_env):
        if value and not _ENV.fullmatch(value):
            raise ValueError(f"{where}: {value!r} is not a name (letters, digits and _)")
    return upstream


@dataclass(frozen=True, kw_only=True)
class ProxyConfig:
    """``credential_proxy.*``: the upstreams, the port the proxy listens on, and an address override for agents."""

    upstreams: Mapping[str, Upstream] = field(default_factory=dict)
    port: int = 8091
    agent_host: str = ""


def group_upstreams(group: Group) -> tuple[str, ...]:
    """The upstreams ``group`` uses (``container_config.upstreams``)."""
    names = group.container_config.get("upstreams") or []
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise InvalidRunSpec(f"container_config.upstreams must be a list of names, not {names!r}")
    return tuple(names)


class AgentHost(Protocol):
    """What a runtime says about where its agents reach this machine (:meth:`Runtime.agent_host`)."""

    async def agent_host(self, network: str) -> str: ...


class CredentialGrants:
    """The environment a run of a group with upstreams gets: per upstream, the proxy's URL and the run's token.

    ``listen(host)`` makes sure the proxy listens on ``host`` (gated starts a listener there the first time);
    ``agent_host`` overrides the address (``credential_proxy.agent_host``, e.g. gated's name on a Compose network).
    """

    def __init__(
        self,
        upstreams: Mapping[str, Upstream],
        tokens: RunTokens,
        *,
        port: int,
        listen: Callable[[str], Awaitable[None]],
        agent_host: str = "",
    ) -> None:
        self.upstreams = upstreams
        self.tokens = tokens
        self._observed: OrderedDict[str, TokenCounts] = OrderedDict()  # run id -> what its API answers stated
        self._port = port
        self._listen = listen
        self._agent_host = agent_host

    def observe(self, run_id: str, counts: TokenCounts) -> None:
        """Add what an answer through the proxy said run ``run_id`` used (kept for the latest 1,000 runs)."""
        self._observed.setdefault(run_id, TokenCounts()).__iadd__(counts)
        self._observed.move_to_end(run_id)
        while len(self._observed) > 1000:
            self._observed.popitem(last=False)

    def observed(self, run_id: str) -> Usage | None:
        """What run ``run_id``'s answers through the proxy said it used, once (forgotten afterwards); None: nothing."""
        counts = self._observed.pop(run_id, None)
        return counts.as_usage() if counts else None

    async def grant(self, spec: RunSpec, group: Group, runtime: AgentHost | None) -> RunSpec:
        """``spec`` with the variables of :meth:`env` added (``spec`` itself for a group without upstreams)."""
        if not group_upstreams(group):
            return spec
        if runtime is None:
            raise InvalidRunSpec(f"group {group.folder}'s runtime is not available in this gated")
        return dataclass_replace(spec, env={**spec.env, **await self.env(group, spec.run_id, runtime, spec.network)})

    async def env(self, group: Group, run_id: str, runtime: AgentHost, network: str) -> dict[str, str]:
        """The variables of ``group``'s run ``run_id`` (empty for a group without upstreams).

        Raises :class:`InvalidRunSpec` for an upstream that is not configured, or a network the proxy cannot be
        reached from: the run does not start, and says why.
        """
        names = group_upstreams(group)
        if not names:
            return {}
        missing = [name for name in names if name not in self.upstreams]
        if missing:
            raise InvalidRunSpec(f"group {group.folder} uses upstream(s) {missing}, not in credential_proxy.upstreams")
        host = self._agent_host or await runtime.agent_host(network)
        if not self._agent_host:
            await self._listen(host)
        shown = f"[{host}]" if ":" in host else host
        env: dict[str, str] = {}
        for name, token in self.tokens.issue(run_id, group.folder, names).items():
            env.update(self.upstreams[name].agent_env(f"http://{shown}:{self._port}", token))
        return env
