"""The configuration keys of the credential proxy (``credential_proxy.*``, issue 19: :mod:`kanmon.web.credproxy`).

:mod:`kanmon.gated.config_keys` puts them in the one key table.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from types import MappingProxyType

from kanmon.gated.config_kinds import INT, STR, Check, Key, Kind, Problem, key
from kanmon.gateway.upstreams import Upstream, parse_upstreams

__all__ = ["PROXY_KEYS"]


def _parse(raw: object) -> Mapping[str, Upstream]:
    if isinstance(raw, str):  # the environment's form: the same mapping, as JSON
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError:
            raise Problem("credential_proxy.upstreams from the environment must be a JSON object") from None
    try:
        return parse_upstreams(raw)
    except ValueError as exc:
        raise Problem(str(exc)) from None


def _show(upstreams: Mapping[str, Upstream]) -> str:
    return ",".join(f"{name}={upstream.base_url} (secret {upstream.secret})" for name, upstream in upstreams.items())


def _is_ip_or_empty(value: str) -> bool:
    if not value:
        return True
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


UPSTREAMS = Kind(
    "a mapping of names to {base_url, secret, header, template, base_url_env, key_env} (JSON in the environment)",
    _parse,
    _show,
)

PROXY_KEYS: tuple[Key, ...] = (
    key(
        "credential_proxy.upstreams",
        UPSTREAMS,
        MappingProxyType({}),
        "APIs agents reach through gated, which adds their keys (anthropic, openai preset; empty: no proxy).",
    ),
    key(
        "credential_proxy.port",
        INT,
        8091,
        "Port of the credential proxy, on each address agents reach (loopback, a Docker network's gateway).",
        check=Check("a port 1-65535", lambda value: 0 < value < 65536),
    ),
    key(
        "credential_proxy.agent_host",
        STR,
        "",
        "Address agents reach the proxy by, if not the runtime's own (e.g. gated's IP on a Compose network).",
        check=Check("an IP address, or empty", _is_ip_or_empty),
    ),
)
