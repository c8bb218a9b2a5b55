"""The chat page's files in a real browser: headless Chromium attaches an image and a text file through the composer's
file input, the agent answers with the sha256 of each file it read in its inbox, and the transcript shows the image
inline (fetched with the token, shown from a ``blob:`` URL) and the other file as a link. Screenshot:
tests/artifacts/web-chat-files.png."""

from __future__ import annotations

import asyncio
import hashlib
import zlib
from pathlib import Path
from typing import Any

from tests.e2e.test_web_browser import ARTIFACTS, browser
from tests.e2e.test_web_chat import TIMEOUT, TOKEN, serve_http
from tests.e2e.test_web_files import files_chat

__all__ = ["browser"]  # the fixture, used by name below


def png(width: int, height: int) -> bytes:
    """A real PNG: an orange-to-blue gradient, so the screenshot shows something."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    rows = b"".join(
        b"\x00" + b"".join(bytes((255 - x, 120, x)) for x in range(0, 256, 256 // width))[: width * 3]
        for _ in range(height)
    )
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + b"\x08\x02\x00\x00\x00"
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PICTURE = png(128, 64)
NOTES = b"meeting notes\n"


def attach_in_the_browser(driver: Any, url: str, picture: Path, notes: Path) -> dict[str, Any]:
    """The user's side, in a worker thread: attach an image with a caption, then a text file alone."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, TIMEOUT)
    seen: dict[str, Any] = {}

    def texts(selector: str) -> list[str]:
        return [element.text for element in driver.find_elements(By.CSS_SELECTOR, selector)]

    driver.get(f"{url}/chat/corp#token={TOKEN}")
    wait.until(ec.text_to_be_present_in_element((By.ID, "connection"), "live"))

    driver.find_element(By.ID, "file-input").send_keys(str(picture))
    seen["chosen"] = driver.find_element(By.ID, "file-name").text
    driver.find_element(By.ID, "message-input").send_keys("what is in this picture?")
    driver.find_element(By.ID, "send").click()
    picture_report = f"file picture.png: sha256 {hashlib.sha256(PICTURE).hexdigest()}"
    wait.until(lambda _: picture_report in texts(".msg-assistant .msg-text"))
    image = wait.until(
        lambda _: next(
            (i for i in driver.find_elements(By.CSS_SELECTOR, ".msg-user .msg-image img") if i.get_attribute("src")),
            None,
        )
    )
    wait.until(lambda _: driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image))
    seen["image"] = driver.execute_script(
        "const i = arguments[0]; return [i.src.slice(0, 5), i.naturalWidth, i.naturalHeight, i.alt]", image
    )
    seen["chosen_after_send"] = driver.find_element(By.ID, "file-name").text

    driver.find_element(By.ID, "file-input").send_keys(str(notes))
    driver.find_element(By.ID, "send").click()
    notes_report = f"file notes.txt: sha256 {hashlib.sha256(NOTES).hexdigest()}"
    wait.until(lambda _: notes_report in texts(".msg-assistant .msg-text"))
    seen["links"] = texts(".msg-user .msg-file a[download]")
    seen["user_texts"] = texts(".msg-user .msg-text")
    seen["replies"] = texts(".msg-assistant .msg-text")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "web-chat-files.png"))
    seen["console_errors"] = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    driver.get("about:blank")
    return seen


async def test_the_chat_page_uploads_files_and_shows_the_image_inline(tmp_path: Path, browser: Any) -> None:
    picture, notes = tmp_path / "picture.png", tmp_path / "notes.txt"
    picture.write_bytes(PICTURE)
    notes.write_bytes(NOTES)
    async with files_chat(tmp_path) as (h, app), serve_http(app) as url:
        seen = await asyncio.wait_for(
            asyncio.to_thread(attach_in_the_browser, browser, url, picture, notes), 4 * TIMEOUT
        )
        inbound = h.inbound("web:corp")

    assert seen["chosen"] == "picture.png" and seen["chosen_after_send"] == ""
    assert seen["image"] == ["blob:", 128, 64, "picture.png"]
    assert seen["links"] == [f"↓ notes.txt ({len(NOTES)} B)"]
    assert seen["user_texts"] == ["what is in this picture?", ""]
    assert seen["replies"] == [
        "echo: what is in this picture?",
        f"file picture.png: sha256 {hashlib.sha256(PICTURE).hexdigest()}",
        "echo:",  # the text as the browser shows it, trimmed
        f"file notes.txt: sha256 {hashlib.sha256(NOTES).hexdigest()}",
    ]
    assert [(row.content, [a["name"] for a in row.attachments or []]) for row in inbound] == [
        ("what is in this picture?", ["picture.png"]),
        ("", ["notes.txt"]),
    ]
    assert seen["console_errors"] == []
    assert (ARTIFACTS / "web-chat-files.png").stat().st_size > 0
