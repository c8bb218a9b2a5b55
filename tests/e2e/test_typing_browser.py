"""The chat page's "agent is working" indicator in headless Chromium (see tests/e2e/test_web_browser.py).

A slow echo agent (twelve seconds to its reply, then three more before it exits) answers the group ``slow``. The
indicator appears once the run starts, comes back after a reload and when the user returns to the topic (the
stream says it again), is absent from another topic, and goes away with the first reply although the run is still
going. Screenshot: tests/artifacts/web-chat-working.png.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.e2e.test_web_browser import ARTIFACTS, browser
from tests.e2e.test_web_chat import OTHER_TOKEN, TIMEOUT, serve_http, web_chat

__all__ = ["browser"]  # the fixture, shared with test_web_browser.py

AGENT = {"ECHO_DELAY": 12.0, "ECHO_HANG": 3.0}


def watch_the_indicator(driver: Any, url: str) -> dict[str, Any]:
    """The user's side, in a worker thread: send, watch "agent is working" come and go; returns what it saw."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, TIMEOUT, poll_frequency=0.05)
    seen: dict[str, Any] = {}

    def indicator() -> Any:
        return driver.find_element(By.ID, "working")

    def replies() -> list[str]:
        return [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".msg-assistant .msg-text")]

    driver.get(f"{url}/chat/slow#token={OTHER_TOKEN}")
    wait.until(ec.text_to_be_present_in_element((By.ID, "connection"), "live"))
    topic = driver.find_element(By.ID, "topic-title").text
    seen["before"] = indicator().is_displayed()
    driver.find_element(By.ID, "message-input").send_keys("take your time")
    driver.find_element(By.ID, "send").click()
    wait.until(lambda _: indicator().is_displayed())
    seen["text"] = indicator().text
    seen["replies_while_working"] = replies()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "web-chat-working.png"))

    driver.refresh()  # a new stream: the state comes again after the replay
    wait.until(ec.text_to_be_present_in_element((By.ID, "connection"), "live"))
    wait.until(lambda _: indicator().is_displayed())
    seen["after_reload"] = indicator().is_displayed()

    driver.find_element(By.ID, "new-topic").click()  # another conversation: nothing works on it
    wait.until(lambda _: driver.find_element(By.ID, "topic-title").text != topic)
    wait.until(ec.text_to_be_present_in_element((By.ID, "connection"), "live"))
    seen["other_topic"] = indicator().is_displayed()

    driver.find_element(By.CSS_SELECTOR, f'.topic[data-topic="{topic}"]').click()
    wait.until(lambda _: indicator().is_displayed())
    seen["back"] = indicator().is_displayed()

    wait.until(lambda _: "echo: take your time" in replies())
    wait.until(lambda _: not indicator().is_displayed())
    seen["replies_after"] = replies()
    driver.save_screenshot(str(ARTIFACTS / "web-chat-replied.png"))
    seen["console_errors"] = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    driver.get("about:blank")  # closes the page's event stream before the server stops
    return seen


async def test_the_chat_page_shows_the_agent_working_until_its_first_reply(tmp_path: Path, browser: Any) -> None:
    async with web_chat(tmp_path, slow=AGENT) as (h, app), serve_http(app) as url:
        seen = await asyncio.wait_for(asyncio.to_thread(watch_the_indicator, browser, url), 4 * TIMEOUT)
        in_flight = h.store.runs_in_flight()  # the reply came; the agent has not exited yet
        stored = [row.content for row in h.store.chat_messages("web:slow", 0, limit=100)]

    assert seen["before"] is False
    assert seen["text"] == "agent is working..."
    assert seen["replies_while_working"] == []
    assert seen["after_reload"] is True
    assert seen["other_topic"] is False
    assert seen["back"] is True
    assert seen["replies_after"] == ["echo: take your time"]
    assert len(in_flight) == 1
    assert stored == ["take your time", "echo: take your time"]  # the indicator is never a message
    assert seen["console_errors"] == []
    assert (ARTIFACTS / "web-chat-working.png").stat().st_size > 0
