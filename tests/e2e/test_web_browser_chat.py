"""The chat page's issue-18 features in headless Chromium (see tests/e2e/test_web_browser.py for the harness).

* an agent's reply is Markdown, rendered by the vendored marked and cleaned by DOMPurify: XSS payloads in it come out
  inert (no script, no handler, no ``javascript:`` link, nothing run), code blocks get a Copy button that copies;
* someone else's messages are set apart from the reader's own and carry their name;
* a topic is renamed in place (the name is stored, the id stays);
* scrolled up, the reader stays on the message they read when the window narrows to a phone's and when new messages
  come (a "New messages" button appears); at the bottom, they stay at the bottom;
* a topic not shown is marked in the list while a run works on it;
* a second tab of the chat gets the token from the first (no link needed), and "Remember on this device" is opt-in.

Screenshots: tests/artifacts/web-chat-markdown.png (desktop), web-chat-markdown-phone.png, web-chat-busy-topic.png,
web-chat-menu.png, web-chat-token-dialog.png.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from kanmon.web.deps import WebConfig
from tests.e2e.test_web_browser import ARTIFACTS, browser
from tests.e2e.test_web_chat import OTHER_TOKEN, TIMEOUT, TOKEN, serve_http, web_chat

__all__ = ["browser"]  # the fixture, shared with test_web_browser.py

PAYLOADS = [
    '<img src=x onerror="window.__xss=1">',
    "<script>window.__xss=2</script>",
    "[click me](javascript:window.__xss=3)",
    '<a href="javascript:window.__xss=4">raw link</a>',
    '<svg onload="window.__xss=5"><circle r="4"/></svg>',
    '<iframe src="javascript:window.__xss=6"></iframe>',
    '<details open ontoggle="window.__xss=7"><summary>s</summary></details>',
    '<math><mtext><table><mglyph><style><img src=x onerror="window.__xss=8"></style></mglyph></table></mtext></math>',
    '<form action="javascript:window.__xss=9"><button>go</button></form>',
    '<div style="position:fixed;inset:0" onclick="window.__xss=10">cover</div>',
]

MARKDOWN = """Here is **bold**, `inline code`, a [link](https://example.com/docs) and a list:

- one
- two

```python
print("copy me")
```

""" + "\n\n".join(PAYLOADS)

# what is left of the payloads in the transcript, by selector: none of it may exist
INERT_CHECK = """
const area = document.getElementById('messages');
const bad = [];
for (const el of area.querySelectorAll('*')) {
  for (const attr of el.attributes) {
    if (attr.name.startsWith('on') || attr.name === 'style') bad.push(el.tagName + ' ' + attr.name);
    if (/^\\s*javascript:/i.test(attr.value)) bad.push(el.tagName + ' ' + attr.name + '=' + attr.value);
  }
}
for (const sel of ['script', 'iframe', 'svg', 'math', 'form', 'img:not(.msg-image img)', 'style']) {
  if (area.querySelector('.md ' + sel)) bad.push(sel);
}
return {bad: bad, xss: window.__xss === undefined ? null : window.__xss};
"""


def read_markdown_chat(driver: Any, url: str, post_as_ana: Any) -> dict[str, Any]:
    """The reader's side (a worker thread); ``post_as_ana(topic, text)`` posts as someone else."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, TIMEOUT, poll_frequency=0.05)
    seen: dict[str, Any] = {}
    driver.execute_cdp_cmd(
        "Browser.grantPermissions", {"origin": url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]}
    )
    driver.get(f"{url}/chat/corp#token={TOKEN}")
    wait.until(ec.text_to_be_present_in_element((By.ID, "connection"), "live"))
    topic = driver.find_element(By.ID, "topic-title").text

    driver.find_element(By.ID, "message-input").send_keys("hello from the reader")
    driver.find_element(By.ID, "send").click()
    wait.until(lambda _: len(driver.find_elements(By.CSS_SELECTOR, ".msg-assistant")) == 1)
    post_as_ana(topic, MARKDOWN)
    wait.until(lambda _: driver.find_elements(By.CSS_SELECTOR, ".msg-assistant .md strong"))
    wait.until(lambda _: driver.find_elements(By.CSS_SELECTOR, ".msg-assistant .md pre"))
    seen["own"] = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".msg-user .msg-text")]
    seen["others"] = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".msg-other .msg-sender")]
    seen["other_is_left"] = driver.execute_script(
        "const o = document.querySelector('.msg-other').getBoundingClientRect();"
        "const u = document.querySelector('.msg-user').getBoundingClientRect();"
        "return o.left < u.left && getComputedStyle(document.querySelector('.msg-other')).backgroundColor"
        " !== getComputedStyle(document.querySelector('.msg-user')).backgroundColor;"
    )
    seen["strong"] = driver.find_element(By.CSS_SELECTOR, ".msg-assistant .md strong").text
    link = driver.find_element(By.CSS_SELECTOR, '.msg-assistant .md a[href^="https://"]')
    seen["link"] = (link.get_attribute("href"), link.get_attribute("target"), link.get_attribute("rel"))
    seen["inert"] = driver.execute_script(INERT_CHECK)

    copy = driver.find_element(By.CSS_SELECTOR, ".msg-assistant .md .code .copy")
    copy.click()
    wait.until(lambda _: copy.text != "Copy")
    seen["copy_button"] = copy.text
    seen["clipboard"] = driver.execute_async_script(
        "const done = arguments[0]; navigator.clipboard.readText().then(done, (e) => done('error: ' + e));"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "web-chat-markdown.png"))

    # rename in place: the title turns into a field; Enter stores the name
    driver.find_element(By.ID, "rename").click()
    field = driver.find_element(By.ID, "rename-input")
    field.send_keys("Trip plans", Keys.ENTER)
    wait.until(lambda _: driver.find_element(By.ID, "topic-title").text == "Trip plans")
    seen["listed_name"] = driver.find_element(By.CSS_SELECTOR, f'.topic[data-topic="{topic}"] .topic-name').text

    # long messages, then scroll up to the middle and narrow the window: the message read stays in view
    def replies(expected: int) -> Any:
        return lambda _: len(driver.find_elements(By.CSS_SELECTOR, ".msg-assistant")) == expected

    for n in range(3):
        post_as_ana(topic, "\n\n".join(f"paragraph {n}.{i} " + "word " * 30 for i in range(12)))
        wait.until(replies(3 + n))
    anchor = driver.execute_script(
        "const list = document.getElementById('messages');"
        "const item = list.children[4]; list.scrollTop = item.offsetTop - 20;"
        "return item.dataset.seq;"
    )
    driver.execute_script("return new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    driver.set_window_size(390, 844)
    wait.until(lambda _: driver.execute_script("return document.documentElement.clientWidth") <= 400)
    driver.execute_script("return new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    seen["anchor_offset"] = driver.execute_script(
        "const list = document.getElementById('messages');"
        f"const item = list.querySelector('[data-seq=\"{anchor}\"]');"
        "return item.offsetTop - list.scrollTop;"
    )
    before = driver.execute_script("return document.getElementById('messages').scrollTop")
    post_as_ana(topic, "a new message while the reader is scrolled up")
    wait.until(lambda _: len(driver.find_elements(By.CSS_SELECTOR, ".msg-assistant")) == 6)
    seen["scroll_moved"] = driver.execute_script("return document.getElementById('messages').scrollTop") - before
    seen["jump_shown"] = driver.find_element(By.ID, "jump").is_displayed()
    seen["phone_overflow"] = driver.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    driver.find_element(By.ID, "jump").click()
    seen["at_bottom"] = driver.execute_script(
        "const l = document.getElementById('messages'); return l.scrollHeight - l.scrollTop - l.clientHeight;"
    )
    driver.execute_script(
        "document.querySelector('.msg-assistant .md .code').scrollIntoView({block: 'center'});"
        "document.getElementById('jump').hidden = true;"
    )
    driver.save_screenshot(str(ARTIFACTS / "web-chat-markdown-phone.png"))
    driver.execute_script("const l = document.getElementById('messages'); l.scrollTop = l.scrollHeight;")
    driver.execute_script("return new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    # back at the bottom: a new message keeps the reader at the bottom, on a phone too
    post_as_ana(topic, "and one more")
    wait.until(lambda _: len(driver.find_elements(By.CSS_SELECTOR, ".msg-assistant")) == 7)
    driver.execute_script("return new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    seen["followed"] = driver.execute_script(
        "const l = document.getElementById('messages'); return l.scrollHeight - l.scrollTop - l.clientHeight;"
    )
    seen["console_errors"] = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    driver.get("about:blank")
    return seen


async def test_replies_render_markdown_safely_and_the_reader_keeps_their_place(tmp_path: Path, browser: Any) -> None:
    config = WebConfig(trusted_sender_header="X-User-Sub")
    async with web_chat(tmp_path, config) as (h, app), serve_http(app) as url:
        loop = asyncio.get_running_loop()
        client = httpx.AsyncClient(base_url=url, timeout=TIMEOUT)

        def post_as_ana(topic: str, text: str) -> None:
            body = {"content": text, "topic": topic}
            headers = {"Authorization": f"Bearer {TOKEN}", "X-User-Sub": "ana"}
            sent = asyncio.run_coroutine_threadsafe(client.post("/web/corp/messages", json=body, headers=headers), loop)
            assert sent.result(TIMEOUT).status_code == 200

        try:
            seen = await asyncio.wait_for(asyncio.to_thread(read_markdown_chat, browser, url, post_as_ana), 4 * TIMEOUT)
        finally:
            await client.aclose()
        names = h.store.topic_names("web:corp")

    assert seen["own"] == ["hello from the reader"]
    assert seen["others"] and set(seen["others"]) == {"ana"}
    assert seen["other_is_left"] is True
    assert seen["strong"] == "bold"
    assert seen["link"] == ("https://example.com/docs", "_blank", "noopener noreferrer nofollow")
    assert seen["inert"] == {"bad": [], "xss": None}
    assert seen["copy_button"] == "Copied"
    assert seen["clipboard"] == 'print("copy me")\n'
    assert [name for name, _ in names.values()] == ["Trip plans"]
    assert seen["listed_name"] == "Trip plans"
    assert abs(seen["anchor_offset"] - 20) <= 2, seen["anchor_offset"]
    assert seen["scroll_moved"] == 0
    assert seen["jump_shown"] is True
    assert seen["phone_overflow"] == 0
    assert seen["at_bottom"] < 2
    assert seen["followed"] < 2
    assert [e["message"] for e in seen["console_errors"]] == []


AGENT = {"ECHO_DELAY": 4.0, "ECHO_HANG": 0.5}


def watch_another_topic(driver: Any, url: str) -> dict[str, Any]:
    """In a worker thread: a run works on a topic not shown; a second tab; remembering the token."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, TIMEOUT, poll_frequency=0.05)
    seen: dict[str, Any] = {}
    driver.get(f"{url}/chat/slow#token={OTHER_TOKEN}")
    wait.until(ec.text_to_be_present_in_element((By.ID, "connection"), "live"))
    first = driver.find_element(By.ID, "topic-title").text
    driver.find_element(By.ID, "message-input").send_keys("take your time")
    driver.find_element(By.ID, "send").click()
    wait.until(lambda _: driver.find_element(By.ID, "working").is_displayed())
    driver.find_element(By.ID, "new-topic").click()
    wait.until(lambda _: driver.find_element(By.ID, "topic-title").text != first)
    marker = f'.topic[data-topic="{first}"] .topic-busy'

    def marked() -> bool:  # asked in one go: the list is drawn anew whenever a topic changes
        return bool(
            driver.execute_script("const m = document.querySelector(arguments[0]); return !!m && !m.hidden", marker)
        )

    wait.until(lambda _: marked())
    seen["shown_topic_working"] = driver.find_element(By.ID, "working").is_displayed()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "web-chat-busy-topic.png"))
    wait.until(lambda _: not marked())

    # a second tab, opened without the link: the first tab hands it the token
    storage = "return [sessionStorage.getItem('kanmon-web-token:slow'), localStorage.getItem('kanmon-web-token:slow')]"
    seen["stored_by_default"] = driver.execute_script(storage)
    driver.switch_to.new_window("tab")
    driver.get(f"{url}/chat/slow")
    wait.until(ec.text_to_be_present_in_element((By.ID, "connection"), "live"))
    seen["second_tab"] = driver.execute_script(storage)
    driver.find_element(By.CSS_SELECTOR, ".menu summary").click()
    driver.find_element(By.ID, "remember").click()
    seen["remembered"] = driver.execute_script(storage)
    driver.find_element(By.ID, "remember").click()
    seen["unremembered"] = driver.execute_script(storage)
    driver.save_screenshot(str(ARTIFACTS / "web-chat-menu.png"))
    driver.find_element(By.ID, "forget").click()  # forgotten in this tab and on the device; the dialog asks for one
    wait.until(lambda _: driver.find_element(By.ID, "token-dialog").is_displayed())
    seen["forgotten"] = driver.execute_script(storage)
    driver.save_screenshot(str(ARTIFACTS / "web-chat-token-dialog.png"))
    seen["console_errors"] = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    driver.close()
    driver.switch_to.window(driver.window_handles[0])
    driver.get("about:blank")
    return seen


async def test_a_topic_not_shown_is_marked_while_worked_on_and_a_second_tab_needs_no_link(
    tmp_path: Path, browser: Any
) -> None:
    async with web_chat(tmp_path, slow=AGENT) as (_h, app), serve_http(app) as url:
        seen = await asyncio.wait_for(asyncio.to_thread(watch_another_topic, browser, url), 4 * TIMEOUT)

    assert seen["shown_topic_working"] is False
    assert seen["stored_by_default"] == [OTHER_TOKEN, None]  # the session only, until asked
    assert seen["second_tab"] == [OTHER_TOKEN, None]
    assert seen["remembered"] == [OTHER_TOKEN, OTHER_TOKEN]
    assert seen["unremembered"] == [OTHER_TOKEN, None]
    assert seen["forgotten"] == [None, None]
    assert seen["console_errors"] == []
