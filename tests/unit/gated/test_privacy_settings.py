"""The ``privacy.*`` keys (issue 16 item 5): a redacting gated needs a salt from a configured secret, long enough;
the salt's value reaches the gateway and the log redaction, never ``gated config show``."""

from __future__ import annotations

from pathlib import Path

import pytest

from kanmon.container.agent_secrets import MissingSecret
from kanmon.gated.config import ConfigError, render_config
from kanmon.gated.daemon import gateway_config, privacy
from kanmon.redaction import redact
from tests.cli_world import settings_of

SALT = "a-salt-long-enough-0123456789"


def test_no_redaction_by_default(tmp_path: Path) -> None:
    assert gateway_config(settings_of(tmp_path)).run.privacy is None


def test_the_salt_is_read_from_its_secret_and_never_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KANMON_TEST_SALT", SALT)
    loaded = settings_of(
        tmp_path,
        KANMON_SECRETS="PII_SALT=env:KANMON_TEST_SALT",
        KANMON_PRIVACY_REDACT="Telegram,matrix",
        KANMON_PRIVACY_SALT="PII_SALT",
        KANMON_PRIVACY_REDACT_NAMES="true",
    )
    made = gateway_config(loaded).run.privacy
    assert made is not None and made.platforms == {"telegram", "matrix"} and made.names
    assert made.salt == SALT and SALT not in repr(made)
    assert SALT not in render_config(loaded)
    assert redact(f"salt={SALT}!") == "salt=[redacted]!" and SALT not in redact(f"the salt is {SALT}")


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"KANMON_PRIVACY_REDACT": "telegram"}, "privacy.redact needs privacy.salt"),
        ({"KANMON_PRIVACY_REDACT": "telegram", "KANMON_PRIVACY_SALT": "NOPE"}, "not configured in the secrets"),
        ({"KANMON_PRIVACY_SALT": "not a name"}, "a secret name like PII_SALT"),
    ],
)
def test_a_redaction_without_a_usable_salt_is_one_line(tmp_path: Path, environ: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_of(tmp_path, **environ)
    assert problem in str(caught.value) and "\n" not in str(caught.value)


def test_a_salt_that_is_too_short_or_unset_stops_gated_naming_the_secret(tmp_path: Path) -> None:
    loaded = settings_of(
        tmp_path, KANMON_SECRETS="PII_SALT=env:KANMON_TEST_SALT", KANMON_PRIVACY_REDACT="telegram",
        KANMON_PRIVACY_SALT="PII_SALT",
    )  # fmt: skip
    with pytest.raises(MissingSecret, match="PII_SALT: the salt must be at least 16"):
        privacy(loaded, {"KANMON_TEST_SALT": "short"})
    with pytest.raises(MissingSecret, match="PII_SALT: the environment variable KANMON_TEST_SALT"):
        privacy(loaded, {})


@pytest.mark.parametrize("names", ["telegram:", "tele gram", "telegram,web:corp", "-x"])
def test_a_platform_no_jid_can_have_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, names: str
) -> None:
    # such a name never matched a chat: its people's ids reached the agents unredacted, and nothing said so
    monkeypatch.setenv("KANMON_TEST_SALT", SALT)
    with pytest.raises(ConfigError) as caught:
        settings_of(
            tmp_path, KANMON_SECRETS="PII_SALT=env:KANMON_TEST_SALT", KANMON_PRIVACY_REDACT=names,
            KANMON_PRIVACY_SALT="PII_SALT",
        )  # fmt: skip
    assert "privacy.redact" in str(caught.value) and "platform" in str(caught.value)
    assert "\n" not in str(caught.value)
