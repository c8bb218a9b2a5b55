"""Files an agent sends, in the web chat: listed on the events, served behind the chat's token, shown in Chromium.

The echo agent (``ECHO_ATTACH=1``) writes ``out/NAME`` and lists it. The API tests check who may fetch what; the
browser test opens the chat page in real headless Chromium, asks for an image and a text file, and sees the image
drawn inline and the text file as a download link (screenshot: tests/artifacts/web-chat-agent-files.png).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from kanmon.container.echo_agent import png
from kanmon.container.events import AttachmentRef
from kanmon.web import create_app
from kanmon.web.tokens import token_hash
from kanmon.web.webchat import chat_event
from tests.e2e.test_web_browser import ARTIFACTS, browser  # noqa: F401 - the fixture
from tests.e2e.test_web_chat import OTHER_TOKEN, TIMEOUT, TOKEN, asgi_client, bearer, serve_http
from tests.gateway_harness import Harness, process_group, running_gateway

IMAGE = png(96, 64)
TEXT = b"notes.txt, written by the echo agent\n"


@contextlib.asynccontextmanager
async def file_chat(tmp_path: Path) -> AsyncIterator[tuple[Harness, FastAPI]]:
    """A gateway with ``corp`` (echo agent with ECHO_ATTACH, token TOKEN) and ``other`` (token OTHER_TOKEN)."""
    groups = [process_group("corp", {"ECHO_ATTACH": 1}), process_group("other", {"ECHO_ATTACH": 1})]
    async with running_gateway(tmp_path / "data", groups, poll_interval=0.2) as h:
        h.store.set_group_web_token("corp", token_hash(TOKEN))
        h.store.set_group_web_token("other", token_hash(OTHER_TOKEN))
        yield h, create_app(h.gateway)


async def test_the_chat_lists_an_agents_files_and_serves_them_only_to_its_token(tmp_path: Path) -> None:
    async with file_chat(tmp_path) as (h, app), asgi_client(app) as client:
        for text in ("attach chart.png", "attach notes.txt"):
            answer = await client.post("/web/corp/messages", json={"content": text, "topic": "t-1"}, headers=bearer())
            assert answer.status_code == 200, answer.text
        await h.wait_for(lambda: len(h.replies("web:corp")) == 2, "both replies")
        image_row, text_row = [row for row in h.outbound("web:corp") if row.run_id]
        events = [chat_event(row).model_dump()["attachments"] for row in (image_row, text_row)]
        assert events == [
            [{"index": 0, "name": "chart.png", "mime": "image/png", "size": len(IMAGE), "inline": True,
              "url": f"/web/corp/media/{image_row.id}/0"}],
            [{"index": 0, "name": "notes.txt", "mime": "text/plain", "size": len(TEXT), "inline": False,
              "url": f"/web/corp/media/{text_row.id}/0"}],
        ]  # fmt: skip

        image = await client.get(f"/web/corp/media/{image_row.id}/0", headers=bearer())
        assert (image.status_code, image.headers["content-type"], image.content) == (200, "image/png", IMAGE)
        assert image.headers["x-content-type-options"] == "nosniff"
        download = await client.get(f"/web/corp/media/{text_row.id}/0", headers=bearer())
        assert (download.status_code, download.headers["content-type"], download.content) == (
            200, "application/octet-stream", TEXT
        )  # fmt: skip
        assert download.headers["content-disposition"] == "attachment; filename*=UTF-8''notes.txt"

        refusals = {
            "no token": await client.get(f"/web/corp/media/{image_row.id}/0"),
            "another group's token": await client.get(f"/web/corp/media/{image_row.id}/0", headers=bearer(OTHER_TOKEN)),
            "its file through another chat": await client.get(
                f"/web/other/media/{image_row.id}/0", headers=bearer(OTHER_TOKEN)
            ),
            "no such index": await client.get(f"/web/corp/media/{image_row.id}/1", headers=bearer()),
            "no such message": await client.get("/web/corp/media/nope/0", headers=bearer()),
            "a message without files": await client.get(
                f"/web/corp/media/{h.inbound('web:corp')[0].id}/0", headers=bearer()
            ),
        }
        assert {what: answer.status_code for what, answer in refusals.items()} == {
            "no token": 401, "another group's token": 401, "its file through another chat": 404,
            "no such index": 404, "no such message": 404, "a message without files": 404,
        }  # fmt: skip
        assert all(IMAGE not in answer.content for answer in refusals.values())

        # the file is gone from the media store (a restore without it): 404, not a crash
        sha = hashlib.sha256(IMAGE).hexdigest()
        (h.data_dir / "media" / sha[:2] / sha[2:]).unlink()
        gone = await client.get(f"/web/corp/media/{image_row.id}/0", headers=bearer())
        assert gone.status_code == 404


def files_in_the_browser(driver: Any, url: str) -> dict[str, Any]:
    """The user's side, in a worker thread: ask for an image and a text file; returns what the page shows."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, TIMEOUT)
    driver.get(f"{url}/chat/corp#token={TOKEN}")
    wait.until(ec.text_to_be_present_in_element((By.ID, "connection"), "live"))

    def replied(text: str) -> Callable[[Any], bool]:
        def shown(_: Any) -> bool:
            replies = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".msg-assistant .msg-text")]
            return f"echo: {text}" in replies

        return shown

    for text in ("attach chart.png", "attach notes.txt"):
        driver.find_element(By.ID, "message-input").send_keys(text)
        driver.find_element(By.ID, "send").click()
        wait.until(replied(text))
    drawn = "const i = document.querySelector('.msg-image img'); return !!i && i.complete && i.naturalWidth > 0"
    wait.until(lambda _: driver.execute_script(drawn))
    wait.until(lambda _: driver.find_elements(By.CSS_SELECTOR, ".msg-file a[download]"))
    image = driver.find_element(By.CSS_SELECTOR, ".msg-image img")
    link = driver.find_element(By.CSS_SELECTOR, ".msg-file a[download]")
    seen = {
        "image_size": driver.execute_script("const i = arguments[0]; return [i.naturalWidth, i.naturalHeight]", image),
        "image_src": image.get_attribute("src"),
        "image_alt": image.get_attribute("alt"),
        "link_text": link.text,
        "link_download": link.get_attribute("download"),
        "link_href": link.get_attribute("href"),
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "web-chat-agent-files.png"))
    seen["console_errors"] = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    driver.get("about:blank")  # closes the page's event stream before the server stops
    return seen


async def test_the_chat_page_shows_an_agents_image_inline_and_a_file_as_a_link(
    tmp_path: Path,
    browser: Any,  # noqa: F811 - the fixture imported above
) -> None:
    (ARTIFACTS / "web-chat-agent-files.png").unlink(missing_ok=True)
    async with file_chat(tmp_path) as (_, app), serve_http(app) as url:
        seen = await asyncio.wait_for(asyncio.to_thread(files_in_the_browser, browser, url), 4 * TIMEOUT)
    assert seen["image_size"] == [96, 64]
    assert seen["image_src"].startswith("blob:") and seen["image_alt"] == "chart.png"
    assert seen["link_text"] == f"↓ notes.txt ({len(TEXT)} B)"
    assert seen["link_download"] == "notes.txt" and seen["link_href"].startswith("blob:")
    assert seen["console_errors"] == []
    assert (ARTIFACTS / "web-chat-agent-files.png").stat().st_size > 0


async def test_a_large_file_is_streamed_whole_by_its_signed_link(tmp_path: Path) -> None:
    async with file_chat(tmp_path) as (h, app), asgi_client(app) as client:
        folder = h.data_dir / "groups" / "corp"
        folder.mkdir(parents=True, exist_ok=True)
        big = bytes(range(256)) * 5000  # 1.2 MiB: many pieces after the sniffed head
        (folder / "big.bin").write_bytes(big)
        stored = h.gateway.media.collect(folder, AttachmentRef("big.bin"))
        answer = await client.get(h.gateway.media_links.url(stored.sha256))
        assert answer.status_code == 200
        assert answer.content == big
        assert answer.headers["content-length"] == str(len(big))
        assert answer.headers["content-type"] == "application/octet-stream"
