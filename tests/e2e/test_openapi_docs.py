"""/docs (Swagger UI) and /redoc (ReDoc) work with no internet: real headless Chromium, cut off from everything but
gated, renders the operations and the webhooks from files gated serves itself (issue 18 item 4).

Chromium resolves no host name but 127.0.0.1 (``--host-resolver-rules``) and sends everything else to a proxy that
does not exist, so a page that needed a CDN would stay blank; the test also checks that every resource the page
loaded came from gated, and that the browser logged no error (a Content-Security-Policy violation is one).
"""

from __future__ import annotations

import asyncio
import hashlib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from kanmon.web.docs import ASSETS
from tests.e2e.test_web_browser import ARTIFACTS, chromium
from tests.e2e.test_web_chat import TIMEOUT, asgi_client, serve_http, web_chat

OFFLINE = (
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9",  # the discard port: nothing listens
    "--proxy-bypass-list=127.0.0.1",
)
#: ReDoc's "API docs by Redocly" logo: an <img> that removes itself when it does not load. The page's CSP blocks it
#: (img-src 'self' data:) before any request leaves, online or not.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def test_the_vendored_files_are_the_pinned_ones() -> None:
    """fastapi-offline is pinned to one version; a different file (another version, a tampered wheel) fails here."""
    for name, (_media_type, sha256) in ASSETS.items():
        data = (resources.files("fastapi_offline") / "static" / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha256, name


async def test_the_docs_pages_and_their_files_are_served_by_gated(tmp_path: Path) -> None:
    async with web_chat(tmp_path) as (_h, app), asgi_client(app) as client:
        for page in ("/docs", "/redoc"):
            answer = await client.get(page)
            assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
            assert "default-src 'none'" in answer.headers["content-security-policy"]
            assert "http" not in answer.text  # no absolute URL: everything from this server
        for name, (media_type, _sha256) in ASSETS.items():
            answer = await client.get(f"/docs-assets/{name}")
            assert answer.status_code == 200 and answer.headers["content-type"] == media_type
        assert (await client.get("/docs-assets/nothing.js")).status_code == 404
        assert "/docs" not in (await client.get("/openapi.json")).json()["paths"]


def read_the_docs(driver: Any, url: str) -> dict[str, Any]:
    """In a worker thread: open /docs and /redoc, wait for the operations and webhooks; what each page showed."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, TIMEOUT)
    seen: dict[str, Any] = {}

    def texts(selector: str) -> list[str]:
        return [element.text for element in driver.find_elements(By.CSS_SELECTOR, selector)]

    def loaded() -> list[str]:
        return list(driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)"))

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.get(f"{url}/docs")
    wait.until(lambda _: len(texts(".opblock-summary-path")) > 10)
    seen["swagger_paths"] = texts(".opblock-summary-path")
    seen["swagger_text"] = driver.find_element(By.TAG_NAME, "body").text
    seen["swagger_loaded"] = loaded()
    driver.save_screenshot(str(ARTIFACTS / "openapi-swagger.png"))
    seen["swagger_errors"] = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]

    driver.get(f"{url}/redoc")
    wait.until(lambda _: "/v1/messages" in driver.find_element(By.TAG_NAME, "body").text)
    seen["redoc_text"] = driver.find_element(By.TAG_NAME, "body").text
    seen["redoc_loaded"] = loaded()
    driver.save_screenshot(str(ARTIFACTS / "openapi-redoc.png"))
    seen["redoc_errors"] = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    driver.get("about:blank")
    return seen


async def test_swagger_ui_and_redoc_render_the_api_with_no_internet(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    driver = chromium(request.config, *OFFLINE)
    try:
        async with web_chat(tmp_path) as (_h, app), serve_http(app) as url:
            seen = await asyncio.wait_for(asyncio.to_thread(read_the_docs, driver, url), 4 * TIMEOUT)
    finally:
        driver.quit()
    for path in ("/v1/messages", "/v1/channels/register", "/web/{folder}/stream", "/v1/chat/completions"):
        assert path in seen["swagger_paths"], path
    assert "send" in seen["swagger_text"] and "Webhooks" in seen["swagger_text"]  # the adapter's side
    assert "/v1/messages" in seen["redoc_text"] and "send" in seen["redoc_text"]
    for page in ("swagger", "redoc"):
        assert seen[f"{page}_loaded"], page
        foreign = [name for name in seen[f"{page}_loaded"] if not name.startswith((url, "data:", "blob:"))]
        assert set(foreign) <= {REDOC_LOGO}, page
        errors = [e["message"] for e in seen[f"{page}_errors"] if REDOC_LOGO not in e["message"]]
        assert errors == [], page
