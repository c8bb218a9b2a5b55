"""The chat page in a real browser: headless Chromium opens /chat/<folder>#token=…, sends a message, sees the reply.

Debian's ``chromium`` and ``chromium-driver`` (scripts/services.sh installs them) are driven by selenium, which is
given both paths, so its selenium-manager never looks for (or downloads) a browser or a driver. Selenium blocks, so
the browser is driven from a worker thread while the test's event loop serves the gateway and the HTTP server.
Screenshots go to tests/artifacts/ (git-ignored; CI keeps them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_web_chat import TIMEOUT, TOKEN, serve_http, web_chat

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
TESTS = Path(__file__).resolve().parents[1]
ARTIFACTS = TESTS / "artifacts"


def service_missing(config: pytest.Config, what: str, why: str) -> None:
    """tests/conftest.py's ``service_missing`` (skip loudly; fail under CI=true).

    Found among the loaded plugins: ``from conftest import`` would get whichever conftest.py was imported last.
    """
    for plugin in config.pluginmanager.get_plugins():
        if Path(getattr(plugin, "__file__", None) or "/").resolve() == TESTS / "conftest.py":
            plugin.service_missing(what, why)
    raise AssertionError("tests/conftest.py is not loaded")


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A headless Chromium session (desktop-sized), closed after the test."""
    driver = chromium(request.config)
    try:
        yield driver
    finally:
        driver.quit()


def chromium(config: pytest.Config, *arguments: str) -> Any:
    """A new headless Chromium session (desktop-sized) with ``arguments`` on its command line; the caller quits it."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        service_missing(config, "Chromium", f"{', '.join(missing)} not installed (Debian: chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        service_missing(config, "selenium", str(exc))
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,850", *arguments):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # an explicit driver path: selenium-manager is skipped entirely, nothing is downloaded
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(TIMEOUT)
    return driver


def chat_in_the_browser(driver: Any, url: str) -> dict[str, Any]:
    """The user's side, run in a worker thread: open the page, talk in two topics, come back; returns what it saw."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, TIMEOUT)
    seen: dict[str, Any] = {}

    def texts(selector: str) -> list[str]:
        return [element.text for element in driver.find_elements(By.CSS_SELECTOR, selector)]

    def say(text: str) -> None:
        box = driver.find_element(By.ID, "message-input")
        box.send_keys(text)
        driver.find_element(By.ID, "send").click()
        wait.until(lambda _: f"echo: {text}" in texts(".msg-assistant .msg-text"))

    driver.get(f"{url}/chat/corp#token={TOKEN}")
    wait.until(ec.text_to_be_present_in_element((By.ID, "connection"), "live"))
    seen["url_after_load"] = driver.current_url
    seen["first_topic"] = driver.find_element(By.ID, "topic-title").text

    say("hello from chromium")
    seen["first_user"] = texts(".msg-user .msg-text")
    seen["first_replies"] = texts(".msg-assistant .msg-text")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "web-chat.png"))

    # a new topic is a new conversation: an empty page, then its own reply
    driver.find_element(By.ID, "new-topic").click()
    wait.until(lambda _: driver.find_element(By.ID, "topic-title").text != seen["first_topic"])
    wait.until(ec.text_to_be_present_in_element((By.ID, "connection"), "live"))
    seen["new_topic_messages"] = texts(".msg .msg-text")
    say("second topic")
    seen["second_topic_texts"] = texts(".msg .msg-text")

    # back to the first topic by its entry in the list: its history comes back from the store
    driver.find_element(By.CSS_SELECTOR, f'.topic[data-topic="{seen["first_topic"]}"]').click()
    wait.until(lambda _: "echo: hello from chromium" in texts(".msg-assistant .msg-text"))
    seen["topics_listed"] = texts(".topic .topic-name")
    seen["back_texts"] = texts(".msg .msg-text")

    # a reload keeps the token (sessionStorage) though the address bar no longer has it
    driver.refresh()
    wait.until(ec.text_to_be_present_in_element((By.ID, "connection"), "live"))
    wait.until(lambda _: "echo: hello from chromium" in texts(".msg-assistant .msg-text"))
    seen["after_reload"] = texts(".msg .msg-text")

    # readable on a phone: one column, nothing wider than the screen
    driver.set_window_size(390, 844)
    seen["phone_overflow"] = driver.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    driver.save_screenshot(str(ARTIFACTS / "web-chat-phone.png"))
    seen["console_errors"] = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    driver.get("about:blank")  # closes the page's event stream before the server stops
    return seen


async def test_the_chat_page_sends_a_message_and_shows_the_echo_reply(tmp_path: Path, browser: Any) -> None:
    async with web_chat(tmp_path) as (h, app), serve_http(app) as url:
        seen = await asyncio.wait_for(asyncio.to_thread(chat_in_the_browser, browser, url), 4 * TIMEOUT)
        async with httpx.AsyncClient(base_url=url) as client:
            topics = (await client.get("/web/corp/topics", headers={"Authorization": f"Bearer {TOKEN}"})).json()
        sent = [(m.content, m.topic, m.origin) for m in h.inbound("web:corp")]

    first = seen["first_topic"]
    assert seen["url_after_load"] == f"{url}/chat/corp"  # the token left the address bar
    assert first.startswith("t-")
    assert seen["first_user"] == ["hello from chromium"]
    assert seen["first_replies"] == ["echo: hello from chromium"]
    assert seen["new_topic_messages"] == []
    assert seen["second_topic_texts"] == ["second topic", "echo: second topic"]
    assert seen["back_texts"] == ["hello from chromium", "echo: hello from chromium"]
    assert seen["after_reload"] == ["hello from chromium", "echo: hello from chromium"]
    second = next(t["topic"] for t in topics["topics"] if t["topic"] != first)
    assert sent == [("hello from chromium", first, "web"), ("second topic", second, "web")]
    assert sorted(seen["topics_listed"]) == sorted([first, second])
    assert seen["phone_overflow"] == 0
    assert seen["console_errors"] == []
    assert (ARTIFACTS / "web-chat.png").stat().st_size > 0
