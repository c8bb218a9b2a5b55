"""An agent's files in an adapter's /send: a fresh signed link each, the bytes inline up to the threshold."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from pathlib import Path

import httpx
import pytest

from kanmon.clock import FakeClock
from kanmon.container.events import AttachmentRef
from kanmon.gateway.adapter_files import AdapterFiles
from kanmon.gateway.adapters import AdapterDeliveryConfig, adapter_deliverer
from kanmon.gateway.delivery import DeliveryError
from kanmon.gateway.media import MediaStore
from kanmon.gateway.media_links import MediaLinks
from kanmon.store import Channel
from tests.unit.gateway.test_adapter_send_body import row

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SMALL, LARGE = b"a,b\n1,2\n", b"x" * 100


def stored(tmp_path: Path) -> tuple[MediaStore, list[dict[str, object]]]:
    folder = tmp_path / "groups" / "corp"
    folder.mkdir(parents=True)
    (folder / "small.csv").write_bytes(SMALL)
    (folder / "large.bin").write_bytes(LARGE)
    media = MediaStore(tmp_path / "media", max_bytes=1 << 20)
    records = [media.collect(folder, AttachmentRef(name)).record() for name in ("small.csv", "large.bin")]
    return media, records


async def test_small_files_go_inline_and_every_file_by_a_link(tmp_path: Path) -> None:
    media, records = stored(tmp_path)
    links = MediaLinks(tmp_path / "media" / "url.key", ttl=60.0, clock=FakeClock(), base_url="http://gated:8080")
    channel = Channel(
        name="tg", url="http://a", token_hash="h", jid_prefixes=["telegram:"], capabilities={}, registered_at=NOW
    )
    files = AdapterFiles(media, links, inline_bytes=len(SMALL))
    deliverer = adapter_deliverer(channel, httpx.AsyncClient(), AdapterDeliveryConfig(), instance="k1", files=files)
    other = {"type": "photo", "file_id": "AgAD"}  # not one of the media store's: passed on as it is
    body = await deliverer.body(row(attachments=[*records, other]))
    small, large, passed = body["attachments"]
    assert passed == other
    assert base64.b64decode(small["data"]) == SMALL and "data" not in large
    for item, data, name, mime in ((small, SMALL, "small.csv", "text/csv"), (large, LARGE, "large.bin", "text/plain")):
        sha = hashlib.sha256(data).hexdigest()
        assert item["url"].startswith(f"http://gated:8080/media/{sha}?exp=")
        assert {k: item[k] for k in ("filename", "name", "mime", "mime_type", "size", "sha256")} == {
            "filename": name, "name": name, "mime": mime, "mime_type": mime, "size": len(data), "sha256": sha,
        }  # fmt: skip
    media.path_of(hashlib.sha256(SMALL).hexdigest()).unlink()  # lost (another machine's data dir, a restore)
    [gone, _] = await files.describe(records)
    assert "data" not in gone and gone["url"]  # still described; its link answers 404
    media.close()


async def test_a_key_that_cannot_be_read_fails_the_attempt_with_one_line_to_retry(tmp_path: Path) -> None:
    media, records = stored(tmp_path)
    key = tmp_path / "media" / "url.key"
    key.write_bytes(b"damaged")
    files = AdapterFiles(media, MediaLinks(key, ttl=60.0, clock=FakeClock()), inline_bytes=0)
    expected = r"no download link for attachment 'small.csv': .* is not a media signing key"
    with pytest.raises(DeliveryError, match=expected):
        await files.describe(records)
    media.close()
