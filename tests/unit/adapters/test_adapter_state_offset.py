"""The saved getUpdates offset belongs to one bot (kanmon.adapters.state): another bot's is never used."""

from __future__ import annotations

from pathlib import Path

import pytest

from kanmon.adapters.state import AdapterState


def opened(directory: Path, text: str | None = None) -> AdapterState:
    directory.mkdir(parents=True, exist_ok=True)
    if text is not None:
        (directory / "offset").write_text(text)
    return AdapterState(directory).open()


def test_an_offset_is_kept_for_its_own_bot_across_a_restart(tmp_path: Path) -> None:
    state = opened(tmp_path)
    state.claim_offset(7)
    state.save_offset(1234, 7)
    state.close()
    again = opened(tmp_path)
    assert again.claim_offset(7) is False
    assert again.offset == 1234
    again.close()


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('{"bot": 8, "offset": 1234}\n', id="another-bot"),
        pytest.param("1234\n", id="an-older-adapters-bare-number"),
    ],
)
def test_an_offset_saved_for_another_or_an_unknown_bot_is_forgotten(tmp_path: Path, text: str) -> None:
    state = opened(tmp_path, text)
    assert state.offset == 1234
    assert state.claim_offset(7) is True
    assert state.offset is None  # getUpdates starts afresh
    state.save_offset(3, 7)
    assert state.offset == 3
    state.close()


@pytest.mark.parametrize("text", ["", "garbage", '{"bot": "7", "offset": 3}', '{"offset": 3}', "[7, 3]", "true"])
def test_an_unreadable_offset_file_is_no_offset(tmp_path: Path, text: str) -> None:
    state = opened(tmp_path, text)
    assert (state.offset, state.offset_bot) == (None, None)
    assert state.claim_offset(7) is False
    state.close()
