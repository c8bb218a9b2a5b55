"""The ``media.*`` keys reach the gateway, and gated's download links point at an address adapters can reach."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kanmon.gated.config import ConfigError
from kanmon.gated.daemon import Daemon, gateway_config
from kanmon.serving import listen
from kanmon.store import Store
from tests.cli_world import settings_of, sqlite_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with sqlite_store(tmp_path) as opened:
        yield opened


def test_the_media_keys_reach_the_gateway(tmp_path: Path) -> None:
    loaded = settings_of(
        tmp_path,
        KANMON_MEDIA_MAX_BYTES="5m",
        KANMON_MEDIA_INLINE_BYTES="0",
        KANMON_MEDIA_URL_TTL="60",
        KANMON_MEDIA_PUBLIC_URL="https://kanmon.example.org",
    )
    media = gateway_config(loaded).media
    assert (media.max_bytes, media.inline_bytes, media.url_ttl, media.public_url) == (
        5 << 20, 0, 60.0, "https://kanmon.example.org"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("key", "value"),
    [("KANMON_MEDIA_MAX_BYTES", "0"), ("KANMON_MEDIA_URL_TTL", "0"), ("KANMON_MEDIA_PUBLIC_URL", "kanmon:8080")],
)
def test_a_bad_media_value_is_one_line_naming_the_key(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_of(tmp_path, **{key: value})
    assert key in str(caught.value) and "\n" not in str(caught.value)


def test_links_go_to_the_listen_address_with_a_wildcard_as_loopback(tmp_path: Path, store: Store) -> None:
    listener = listen("0.0.0.0:0")
    try:
        daemon = Daemon(settings_of(tmp_path), store, listener=listener)
        port = listener.getsockname()[1]
        assert daemon.gateway.media_links.base_url == f"http://127.0.0.1:{port}"
    finally:
        listener.close()


def test_links_go_to_the_public_url_when_one_is_set(tmp_path: Path, store: Store) -> None:
    listener = listen("127.0.0.1:0")
    try:
        daemon = Daemon(
            settings_of(tmp_path, KANMON_MEDIA_PUBLIC_URL="https://kanmon.example.org"), store, listener=listener
        )
        assert daemon.gateway.media_links.base_url == "https://kanmon.example.org"
    finally:
        listener.close()
