"""Signed download links of the media store: bound to one file and one expiry, refused once expired or tampered."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kanmon.clock import FakeClock
from kanmon.gateway.media_links import KEY_BYTES, MediaLinks, load_key

SHA = hashlib.sha256(b"chart").hexdigest()
OTHER = hashlib.sha256(b"other").hexdigest()


def parts(url: str) -> tuple[str, str, str]:
    split = urlsplit(url)
    query = parse_qs(split.query)
    return split.path.rpartition("/")[2], query["exp"][0], query["sig"][0]


def links(tmp_path: Path, clock: FakeClock, ttl: float = 60.0) -> MediaLinks:
    return MediaLinks(tmp_path / "media" / "url.key", ttl=ttl, clock=clock, base_url="http://gated:8080/")


def test_a_link_is_valid_until_its_ttl_passes(tmp_path: Path) -> None:
    clock = FakeClock(start=0.0)
    signer = links(tmp_path, clock)
    url = signer.url(SHA)
    assert url.startswith(f"http://gated:8080/media/{SHA}?exp=")
    sha, expires, signature = parts(url)
    assert signer.valid(sha, expires, signature)
    clock.advance(59.0)
    assert signer.valid(sha, expires, signature)
    clock.advance(2.5)
    assert not signer.valid(sha, expires, signature)


def test_a_tampered_link_is_refused(tmp_path: Path) -> None:
    signer = links(tmp_path, FakeClock())
    sha, expires, signature = parts(signer.url(SHA))
    assert not signer.valid(OTHER, expires, signature)  # another file
    assert not signer.valid(sha, str(int(expires) + 3600), signature)  # a later expiry
    assert not signer.valid(sha, expires, signature[:-1] + ("A" if signature[-1] != "A" else "B"))
    assert not signer.valid(sha, expires, "")
    assert not signer.valid(sha, "-1", signature)
    assert not signer.valid("../../etc/passwd", expires, signature)


@given(sha=st.text(max_size=80), expires=st.text(max_size=20), signature=st.text(max_size=60))
def test_nothing_made_up_is_ever_valid(sha: str, expires: str, signature: str) -> None:
    signer = MediaLinks(Path("/nonexistent"), ttl=60.0, clock=FakeClock(), key=b"k" * KEY_BYTES)
    assert not signer.valid(sha, expires, signature)


def test_another_gateds_key_signs_nothing_here(tmp_path: Path) -> None:
    mine, theirs = links(tmp_path / "a", FakeClock()), links(tmp_path / "b", FakeClock())
    assert not mine.valid(*parts(theirs.url(SHA)))


def test_the_key_is_made_once_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "media" / "url.key"
    key = load_key(path)
    assert len(key) == KEY_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(path) == key
    signer, again = links(tmp_path, FakeClock()), links(tmp_path, FakeClock())
    assert again.valid(*parts(signer.url(SHA)))  # a restarted gated (or its standby) honours earlier links


def test_a_damaged_key_file_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "url.key"
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="is not a media signing key"):
        load_key(path)


def test_only_a_sha256_gets_a_link(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a sha256"):
        links(tmp_path, FakeClock()).url("../x")
