"""The attachments.* keys: from the file and the environment into the gateway's fetch policy and the web's upload cap;
a bad value is one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from kanmon.gated.config import ConfigError, load_settings
from kanmon.gated.daemon import gateway_config, web_config


def test_attachment_settings_reach_the_fetch_policy_and_the_upload_cap(tmp_path: Path) -> None:
    (tmp_path / "kanmon.yaml").write_text(
        "attachments:\n  max_bytes: 2m\n  fetch_timeout: 5\n  allow_private: [10.0.0.0/8, 'fd00::/8']\n"
    )
    environ = {"KANMON_ATTACHMENTS_FETCH_ATTEMPTS": "5"}
    settings = load_settings(data_dir=str(tmp_path), config_path=None, environ=environ, overrides={})
    policy = gateway_config(settings).attachments
    assert (policy.max_bytes, policy.timeout, policy.attempts) == (2 << 20, 5.0, 5)
    assert policy.allow_private == ("10.0.0.0/8", "fd00::/8")
    assert web_config(settings).max_upload_bytes == 2 << 20


def test_the_defaults_refuse_every_private_network(tmp_path: Path) -> None:
    settings = load_settings(data_dir=str(tmp_path), config_path=None, environ={}, overrides={})
    policy = gateway_config(settings).attachments
    assert (policy.max_bytes, policy.timeout, policy.attempts, policy.networks) == (10 << 20, 30.0, 3, ())


@pytest.mark.parametrize(
    ("variable", "value"),
    [("KANMON_ATTACHMENTS_ALLOW_PRIVATE", "10.0.0.0/8,intranet"), ("KANMON_ATTACHMENTS_MAX_BYTES", "0")],
)
def test_a_bad_attachment_setting_is_one_line_naming_the_key(tmp_path: Path, variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(data_dir=str(tmp_path), config_path=None, environ={variable: value}, overrides={})
    message = str(caught.value)
    assert "\n" not in message and variable in message
