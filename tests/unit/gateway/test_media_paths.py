"""Nothing outside a group folder is ever copied into the media store, whatever path an agent lists (issue 14, item 4).

A real folder on disk holds a regular file and every trap an agent could set: symlinks to a file and a directory
outside, to ``/proc/self/environ`` and ``/dev/zero``, a FIFO (which must not block the copy), a hard link to a file
outside, a directory symlink in the middle of a path. Hypothesis throws paths at it; a thread swaps a symlink in and
out while files are collected. The only bytes that may ever come back are the inside file's.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kanmon.container.events import AttachmentRef
from kanmon.gateway.errors import AttachmentRefused
from kanmon.gateway.folder_files import MAX_PATH_BYTES, open_folder_file, relative_parts
from kanmon.gateway.media import MediaStore, safe_name, sniff

INSIDE = b"the agent's own chart\n"
OUTSIDE = b"SECRET-OUTSIDE-THE-FOLDER\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, MediaStore]]:
    base = tmp_path_factory.mktemp("paths")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(OUTSIDE)
    (outside / "out").mkdir()
    (outside / "out" / "chart.png").write_bytes(OUTSIDE)
    folder = base / "groups" / "corp"
    (folder / "out").mkdir(parents=True)
    (folder / "out" / "chart.png").write_bytes(INSIDE)
    (folder / "link-out").symlink_to(outside / "secret.txt")
    (folder / "rel-link-out").symlink_to("../../outside/secret.txt")
    (folder / "dir-out").symlink_to(outside)
    (folder / "inner-link").symlink_to("out/chart.png")  # a symlink even to inside is not followed
    (folder / "environ").symlink_to("/proc/self/environ")
    (folder / "zero").symlink_to("/dev/zero")
    os.mkfifo(folder / "fifo")
    os.link(outside / "secret.txt", folder / "hard")
    yield folder, MediaStore(base / "media", max_bytes=1 << 20)


NAMES = st.sampled_from(
    ["out", "chart.png", "link-out", "rel-link-out", "dir-out", "inner-link", "environ", "zero", "fifo", "hard",
     "secret.txt", "..", ".", "", "outside", "groups", "corp", "proc", "self", "environ", "dev", "etc", "passwd"]
)  # fmt: skip
PATHS = st.one_of(
    st.lists(NAMES, min_size=1, max_size=8).map("/".join),
    st.lists(NAMES, min_size=1, max_size=8).map(lambda parts: "/" + "/".join(parts)),
    st.lists(NAMES, min_size=1, max_size=6).map(lambda parts: "/home/agent/" + "/".join(parts)),
    st.sampled_from(["/proc/self/environ", "/etc/passwd", "/dev/zero", "../outside/secret.txt", "~/x"]),
    st.text(max_size=300),
    st.integers(min_value=1, max_value=3).map(lambda n: "a/" * (MAX_PATH_BYTES // 2 * n)),
)


@settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=PATHS)
def test_only_the_inside_file_ever_comes_back(world: tuple[Path, MediaStore], path: str) -> None:
    folder, media = world
    try:
        stored = media.collect(folder, AttachmentRef(path))
    except AttachmentRefused as exc:
        assert "\n" not in str(exc) and str(exc).startswith("attachment ")
        return
    assert media.read(stored.sha256) == INSIDE
    assert relative_parts(path) == ("out", "chart.png")


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        pytest.param("link-out", "symbolic link", id="symlink-out"),
        pytest.param("rel-link-out", "symbolic link", id="relative-symlink-out"),
        pytest.param("dir-out/secret.txt", "not a directory inside the folder", id="dir-symlink"),
        pytest.param("inner-link", "symbolic link", id="symlink-inside"),
        pytest.param("environ", "symbolic link", id="proc-self"),
        pytest.param("zero", "symbolic link", id="device"),
        pytest.param("fifo", "not a regular file", id="fifo"),
        pytest.param("out", "not a regular file", id="directory"),
        pytest.param("hard", "hard links", id="hard-link"),
        pytest.param("../outside/secret.txt", "'..'", id="dotdot"),
        pytest.param("/proc/self/environ", "relative", id="absolute"),
        pytest.param("/home/agent/../outside/secret.txt", "'..'", id="home-dotdot"),
        pytest.param("nope.png", "no such file", id="missing"),
        pytest.param("a\x00b", "NUL", id="nul"),
        pytest.param("x" * 300, "longer than 255", id="long-name"),
        pytest.param("a/" * 3000, "longer than 4096", id="long-path"),
        pytest.param("\ud83d.png", "UTF-8", id="surrogate"),
        pytest.param("./", "names no file", id="nothing"),
    ],
)
def test_each_trap_is_refused_with_one_line_naming_why(world: tuple[Path, MediaStore], path: str, reason: str) -> None:
    folder, media = world
    with pytest.raises(AttachmentRefused, match=r"^attachment ") as caught:
        media.collect(folder, AttachmentRef(path))
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_container_home_prefix_and_dots_mean_the_folder(world: tuple[Path, MediaStore]) -> None:
    folder, media = world
    for path in ("out/chart.png", "/home/agent/out/chart.png", "./out//chart.png"):
        stored = media.collect(folder, AttachmentRef(path, None))
        assert (stored.name, stored.size, media.read(stored.sha256)) == ("chart.png", len(INSIDE), INSIDE)


def test_the_folder_s_own_host_path_means_the_folder_too(world: tuple[Path, MediaStore]) -> None:
    """On the process runtime the agent's folder is its host path, and the paths it is given are absolute under it;
    docs/agent-protocol.md says to send back the path given (newcomer's report: refused as 'must be relative')."""
    folder, media = world
    stored = media.collect(folder, AttachmentRef(f"{folder}/out/chart.png", None))
    assert (stored.name, media.read(stored.sha256)) == ("chart.png", INSIDE)
    for path in (f"{folder}/../outside/secret.txt", f"{folder.parent}/corp-other/x", f"{folder}/link-out"):
        with pytest.raises(AttachmentRefused):
            media.collect(folder, AttachmentRef(path, None))


def test_a_file_over_the_cap_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "g"
    folder.mkdir()
    (folder / "big.bin").write_bytes(b"x" * 101)
    with pytest.raises(AttachmentRefused, match="101 bytes, more than the 100 allowed"):
        MediaStore(tmp_path / "media", max_bytes=100).collect(folder, AttachmentRef("big.bin"))
    assert not list((tmp_path / "media").rglob("*")) or not any(p.is_file() for p in (tmp_path / "media").rglob("*"))


def test_a_symlink_swapped_in_while_collecting_never_leaks_the_outside(tmp_path: Path) -> None:
    """A thread renames a symlink to outside over the file and back, as fast as it can, while kanmon collects it."""
    outside = tmp_path / "secret.txt"
    outside.write_bytes(OUTSIDE)
    folder = tmp_path / "g"
    (folder / "d").mkdir(parents=True)
    (folder / "d" / "f").write_bytes(INSIDE)
    (tmp_path / "outdir").mkdir()
    (tmp_path / "outdir" / "f").write_bytes(OUTSIDE)
    media = MediaStore(tmp_path / "media", max_bytes=1 << 20)
    stop = threading.Event()

    def swap() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            link, real = folder / f".link-{n}", folder / f".real-{n}"
            link.symlink_to(outside)
            real.write_bytes(INSIDE)
            link.replace(folder / "f")  # the file is now a symlink to outside
            real.replace(folder / "f")  # and a regular file again
            dlink = folder / f".dlink-{n}"
            dlink.symlink_to(tmp_path / "outdir")
            (folder / "d").rename(folder / f".d-{n}")
            dlink.rename(folder / "d")  # the directory is now a symlink to outside
            (folder / "d").unlink()
            (folder / f".d-{n}").rename(folder / "d")

    (folder / "f").write_bytes(INSIDE)
    swapper = threading.Thread(target=swap)
    swapper.start()
    outcomes = {"stored": 0, "refused": 0}
    try:
        for _ in range(1000):
            for path in ("f", "d/f"):
                try:
                    stored = media.collect(folder, AttachmentRef(path))
                except AttachmentRefused:
                    outcomes["refused"] += 1
                    continue
                outcomes["stored"] += 1
                assert media.read(stored.sha256) == INSIDE
    finally:
        stop.set()
        swapper.join()
    assert outcomes["stored"] > 0 and outcomes["refused"] > 0, outcomes  # both sides of the race were seen
    kept = [p for p in (tmp_path / "media").rglob("*") if p.is_file()]
    assert [p.read_bytes() for p in kept] == [INSIDE]


def test_open_folder_file_gives_a_readable_descriptor_of_the_file(world: tuple[Path, MediaStore]) -> None:
    folder, _ = world
    fd, found = open_folder_file(folder, "out/chart.png", max_bytes=100)
    try:
        assert os.read(fd, 100) == INSIDE
        assert found.st_size == len(INSIDE)
    finally:
        os.close(fd)


@given(name=st.one_of(st.none(), st.text(max_size=400)), path=st.text(min_size=1, max_size=100))
def test_a_shown_name_never_holds_a_directory_or_a_control_character(name: str | None, path: str) -> None:
    shown = safe_name(name, path)
    assert shown and "/" not in shown and "\\" not in shown and len(shown) <= 200
    assert all(ch.isprintable() for ch in shown) and shown not in (".", "..")


def test_a_copy_a_crash_left_half_done_is_swept_once_old(tmp_path: Path) -> None:
    media = MediaStore(tmp_path / "media", max_bytes=1 << 20)
    spool = tmp_path / "media" / "tmp"
    spool.mkdir(parents=True)
    old, fresh = spool / "in-old", spool / "in-fresh"
    old.write_bytes(b"half a file")
    fresh.write_bytes(b"being copied right now")
    os.utime(old, (1000.0, 1000.0))
    os.utime(fresh, (5000.0, 5000.0))
    assert media.sweep(now=5000.0 + 10, older_than=3600.0) == 1
    assert sorted(p.name for p in spool.iterdir()) == ["in-fresh"]
    assert MediaStore(tmp_path / "nothing-yet", max_bytes=1).sweep(now=0.0, older_than=1.0) == 0


@pytest.mark.parametrize(
    ("head", "name", "mime"),
    [
        pytest.param(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "notes.txt", "image/png", id="png-whatever-its-name"),
        pytest.param(b"<svg xmlns='http://www.w3.org/2000/svg'><script/></svg>", "x.svg", "text/plain", id="svg"),
        pytest.param(b"<html><script>alert(1)</script>", "chart.png", "text/plain", id="html-named-png"),
        pytest.param(b"a,b\n1,2\n", "data.csv", "text/csv", id="csv"),
        pytest.param(b'{"a": 1}', "x.json", "application/json", id="json"),
        pytest.param("caf\u00e9".encode()[:-1], "t.txt", "text/plain", id="utf8-cut-in-a-character"),
        pytest.param(b"\x00\x01\x02\xff", "chart.png", "application/octet-stream", id="binary"),
        pytest.param(b"", "empty.png", "text/plain", id="empty"),
    ],
)
def test_a_files_type_comes_from_its_bytes_never_its_name(head: bytes, name: str, mime: str) -> None:
    assert sniff(head, name) == mime


def test_a_nested_group_folder_swapped_for_a_symlink_by_its_parents_agent_is_not_followed(tmp_path: Path) -> None:
    groups = tmp_path / "groups"
    (groups / "corp" / "eng" / "out").mkdir(parents=True)
    (groups / "corp" / "eng" / "out" / "chart.png").write_bytes(INSIDE)
    media = MediaStore(tmp_path / "media", max_bytes=1 << 20)
    ref = AttachmentRef("out/chart.png")
    assert media.read(media.collect(groups / "corp" / "eng", ref, root=groups).sha256) == INSIDE
    # corp's agent has corp/ mounted, eng/ inside it: it swaps eng/ for a symlink to somewhere else
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "out").mkdir(parents=True)
    (elsewhere / "out" / "chart.png").write_bytes(OUTSIDE)
    (groups / "corp" / "eng").rename(tmp_path / "eng-moved")
    (groups / "corp" / "eng").symlink_to(elsewhere)
    with pytest.raises(AttachmentRefused, match="its group folder"):
        media.collect(groups / "corp" / "eng", ref, root=groups)
