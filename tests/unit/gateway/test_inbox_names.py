"""Attachment names and the inbox: whatever a sender calls a file, it lands in ``<group>/inbox`` and nowhere else.

Hypothesis draws names from everything a sender could send (``../``, absolute paths, NUL and other control
characters, Windows separators, dot files, any unicode, very long names); the files are really written to a
temporary folder and the whole tree around it is checked afterwards.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kanmon.container import PromptAttachment, PromptMessage
from kanmon.gateway.attachments import (
    MAX_NAME_BYTES,
    attachment_problem,
    decode_data,
    inbox_names,
    read_attachments,
    safe_name,
)
from kanmon.gateway.inbox import existing_size, save_file

NASTY = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(["/", "\\", ".", "\0", ":", " ", "a", "é", "\u202e", "\n", "~"])),
    st.builds(lambda parts: "/".join(parts), st.lists(st.sampled_from(["..", ".", "", "etc", "passwd"]))),
    st.builds(lambda n, tail: "x" * n + tail, st.integers(100, 600), st.sampled_from(["", ".png", ".a" * 40])),
)


def _tree(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


@given(name=NASTY)
@example(name="../../etc/passwd")
@example(name="/etc/passwd")
@example(name="..\\..\\windows\\system32")
@example(name="C:\\Users\\a.txt")
@example(name=".bashrc")
@example(name="..")
@example(name="a\0b")
@example(name="")
@example(name="é" * 300 + ".jpeg")
def test_a_safe_name_is_one_harmless_component(name: str) -> None:
    safe = safe_name(name)
    assert safe and safe not in (".", "..")
    assert not safe.startswith(".")
    assert "/" not in safe and "\\" not in safe and "\0" not in safe
    assert all(ch.isprintable() for ch in safe)
    assert len(safe.encode()) <= MAX_NAME_BYTES
    assert safe_name(safe) == safe  # already safe: unchanged


def test_a_safe_name_keeps_what_is_harmless() -> None:
    assert safe_name("chart 2024.png") == "chart_2024.png"
    assert safe_name("résumé.pdf") == "résumé.pdf"
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("C:\\temp\\report.docx") == "report.docx"
    assert safe_name(".env") == "env"
    assert safe_name("...") == "file"
    long = safe_name("a" * 500 + ".tar.gz")
    assert long.endswith(".gz") and len(long.encode()) == MAX_NAME_BYTES


@given(names=st.lists(NASTY, max_size=6), seq=st.integers(1, 2**62))
def test_inbox_names_are_unique_within_a_message_and_start_with_the_seq(names: list[str], seq: int) -> None:
    found = inbox_names(seq, names)
    assert len(found) == len(names) == len(set(found))
    assert all(name.startswith(f"{seq}-") for name in found)
    assert inbox_names(seq, names) == found  # deterministic: a retried run finds its files again


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(names=st.lists(NASTY, min_size=1, max_size=4), seq=st.integers(1, 10**6))
def test_saved_files_land_in_the_inbox_and_nowhere_else(
    tmp_path_factory: pytest.TempPathFactory, names: list[str], seq: int
) -> None:
    root = tmp_path_factory.mktemp("data")
    group = root / "groups" / "corp"
    group.mkdir(parents=True)
    for index, filename in enumerate(inbox_names(seq, names)):
        assert save_file(group, filename, f"content {index}".encode()) == len(f"content {index}")
        assert existing_size(group, filename) == len(f"content {index}")
    inbox = group / "inbox"
    assert _tree(root) == {"groups", "groups/corp", "groups/corp/inbox"} | {
        f"groups/corp/inbox/{path.name}" for path in inbox.iterdir()
    }
    assert len(list(inbox.iterdir())) == len(names)  # no .part left behind


def test_a_symlinked_inbox_or_folder_is_refused_and_nothing_is_written_through_it(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    group = tmp_path / "groups" / "corp"
    group.mkdir(parents=True)
    (group / "inbox").symlink_to(outside)  # planted by the agent, which owns its folder
    with pytest.raises(OSError):
        save_file(group, "1-a.txt", b"x")
    linked = tmp_path / "groups" / "linked"
    linked.symlink_to(outside)
    with pytest.raises(OSError):
        save_file(linked, "1-a.txt", b"x")
    assert list(outside.iterdir()) == []


def test_a_planted_symlink_at_the_file_name_is_replaced_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"keep")
    group = tmp_path / "corp"
    (group / "inbox").mkdir(parents=True)
    (group / "inbox" / "1-a.txt").symlink_to(target)
    assert save_file(group, "1-a.txt", b"new") == 3
    assert target.read_bytes() == b"keep"
    assert not (group / "inbox" / "1-a.txt").is_symlink()
    assert (group / "inbox" / "1-a.txt").read_bytes() == b"new"


def test_a_file_already_saved_is_kept_and_a_leftover_part_is_replaced(tmp_path: Path) -> None:
    group = tmp_path / "corp"
    (group / "inbox").mkdir(parents=True)
    (group / "inbox" / ".1-a.txt.part").write_bytes(b"half")  # a crash in the middle of a write
    assert save_file(group, "1-a.txt", b"whole") == 5
    assert save_file(group, "1-a.txt", b"other") == 5  # there already: not written again
    assert [path.name for path in (group / "inbox").iterdir()] == ["1-a.txt"]
    assert (group / "inbox" / "1-a.txt").read_bytes() == b"whole"


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", ".hidden", "a\0b"])
def test_save_file_takes_only_plain_names(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="not a plain file name"):
        save_file(tmp_path, bad, b"x")
    assert list(tmp_path.iterdir()) == []


def test_attachment_metadata_and_problems() -> None:
    data = base64.b64encode(b"hello").decode()
    raw: list[Any] = [
        {"name": "a.png", "mime": "image/png", "size": 5, "data": data},
        {"filename": "b.jpg", "mime_type": "image/jpeg", "url": "https://x/b"},
        "not an object",
        {"size": True},
        {"type": "photo", "mime": "image/jpeg", "file_id": "AgAD"},
        {"kind": "../x", "mime": "no/such"},
    ]
    found = read_attachments(raw)
    assert [(a.name, a.mime, a.size, a.url, a.data) for a in found] == [
        ("a.png", "image/png", 5, None, data),
        ("b.jpg", "image/jpeg", None, "https://x/b", None),
        ("file.bin", "application/octet-stream", None, None, None),
        ("photo.jpg", "image/jpeg", None, None, None),
        ("file", "no/such", None, None, None),
    ]
    assert decode_data(base64.b64encode(b"x").decode().rstrip("=")) == b"x"
    assert attachment_problem({"name": "a", "url": "https://h/a", "size": 3}) is None
    assert attachment_problem({"url": "file:///etc/passwd"}) == "an attachment's url must be an http:// or https:// URL"
    assert attachment_problem({"url": "ftp://h/a"}) == "an attachment's url must be an http:// or https:// URL"
    assert attachment_problem({"data": "not base64!"}) == "an attachment's data is not base64"
    assert attachment_problem({"size": -1}) == "an attachment's size must be a number of bytes"
    assert attachment_problem({"name": 3}) == "an attachment's name must be text"
    assert attachment_problem([1]) == "an attachment must be an object"


def test_the_prompt_lists_attachments_inside_their_message() -> None:
    import datetime as dt

    message = PromptMessage(
        sender="Ann",
        sender_id="web:ann",
        time=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        chat_id="web:corp",
        platform="web",
        text="see <this>",
        attachments=[
            PromptAttachment(name='a "b".png', mime="image/png", size=5, path="/home/agent/inbox/7-a_b_.png"),
            PromptAttachment(name="c.txt", mime="text/plain", error="not received: HTTP 404"),
        ],
    )
    assert message.render() == (
        '<message sender="Ann" sender_id="web:ann" time="2026-01-02T03:04:05Z" chat_id="web:corp" platform="web">'
        "see &lt;this&gt;"
        '<attachment name="a &quot;b&quot;.png" mime="image/png" size="5" path="/home/agent/inbox/7-a_b_.png"/>'
        '<attachment name="c.txt" mime="text/plain" error="not received: HTTP 404"/>'
        "</message>"
    )
