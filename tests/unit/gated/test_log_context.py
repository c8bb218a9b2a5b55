"""Log lines carry the ids of the work they are about (issue 18 item 6): bound once where the work begins
(:mod:`kanmon.logcontext`), added by the formatter to every line logged inside, by whoever logs it."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

import pytest

from kanmon.gated.logs import ACCESS_LOGGER, LogFormatter, configure_logging, log_format
from kanmon.logcontext import FIELDS, bound, fields
from tests.unit.gated.test_logs import restore_logging

__all__ = ["restore_logging"]  # autouse: the root logger is process-wide, left as pytest set it up


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bound_ids_nest_and_are_gone_after_the_block() -> None:
    assert fields() == {}
    with bound(lane="corp", folder="corp", attempt=2):
        with bound(run_id="r1", chat=None):  # None is left out
            assert dict(fields()) == {"run_id": "r1", "lane": "corp", "folder": "corp", "attempt": 2}
        assert dict(fields()) == {"lane": "corp", "folder": "corp", "attempt": 2}
    assert fields() == {}


def test_only_the_documented_names_can_be_bound() -> None:
    with pytest.raises(ValueError, match="unknown log fields"), bound(runid="r1"):
        pass
    assert "task" in FIELDS and "run_id" in FIELDS


async def test_a_task_started_inside_inherits_the_ids_and_a_sibling_does_not_see_them() -> None:
    seen: dict[str, object] = {}

    async def note(name: str) -> None:
        seen[name] = dict(fields())

    with bound(run_id="r1"):
        inside = asyncio.create_task(note("inside"))
    outside = asyncio.create_task(note("outside"))
    await asyncio.gather(inside, outside)
    assert seen == {"inside": {"run_id": "r1"}, "outside": {}}


def test_json_lines_carry_the_bound_ids_as_keys_and_an_extra_wins() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    with bound(run_id="r1", lane="corp#t", chat="web:corp", folder="corp", attempt=1, task=7):
        logging.getLogger("kanmon.any").info("run finish", extra={"result": "ok", "attempt": 3})
    entry = json.loads(stream.getvalue())
    assert {key: entry[key] for key in ("run_id", "lane", "chat", "folder", "task", "result")} == {
        "run_id": "r1", "lane": "corp#t", "chat": "web:corp", "folder": "corp", "task": 7, "result": "ok",
    }  # fmt: skip
    assert entry["attempt"] == 3  # the call's own value
    assert log_format() == "json"


def test_text_lines_show_each_id_once_after_the_message() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "text", stream)
    with bound(run_id="r1", lane="corp", folder="corp"):
        logging.getLogger("kanmon.any").warning("slow", extra={"lane": "corp", "seconds": 2})
    line = stream.getvalue().strip()
    assert line.endswith("WARNING kanmon.any: slow run_id=r1 lane=corp folder=corp seconds=2")
    assert line.count("lane=") == 1


def test_level_names_are_coloured_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    terminal, piped = Terminal(), io.StringIO()
    for stream in (terminal, piped):
        configure_logging("INFO", "text", stream)
        logging.getLogger("kanmon.any").error("boom")
    assert "\x1b[31mERROR\x1b[0m" in terminal.getvalue()
    assert "\x1b" not in piped.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    plain = Terminal()
    configure_logging("INFO", "text", plain)
    logging.getLogger("kanmon.any").error("boom")
    assert "\x1b" not in plain.getvalue()
    assert not LogFormatter("json", colour=True).colour  # JSON is never coloured


def test_uvicorn_access_lines_become_fields_with_the_token_redacted() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream, access=True)
    path = "/web/corp/stream?topic=t&token=s3cret-web-token"
    logging.getLogger(ACCESS_LOGGER).info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", path, "1.1", 200)
    entry = json.loads(stream.getvalue())
    assert entry["message"] == "GET /web/corp/stream?topic=t&token=[redacted] 200"
    assert (entry["method"], entry["status"], entry["client"]) == ("GET", 200, "127.0.0.1:5000")
    assert entry["path"] == "/web/corp/stream?topic=t&token=[redacted]"
    assert "s3cret" not in stream.getvalue()


def test_the_access_log_is_off_at_info_unless_asked_for() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "text", stream)
    logging.getLogger(ACCESS_LOGGER).info('%s - "%s %s HTTP/%s" %d', "c", "GET", "/healthz", "1.1", 200)
    assert stream.getvalue() == ""
    configure_logging("INFO", "text", stream, access=True)
    logging.getLogger(ACCESS_LOGGER).info('%s - "%s %s HTTP/%s" %d', "c", "GET", "/healthz", "1.1", 200)
    assert stream.getvalue().strip().endswith("GET /healthz 200 method=GET path=/healthz status=200 client=c")


async def test_the_credential_proxy_starting_later_leaves_gateds_access_log_on() -> None:
    """uvicorn's ``access_log=False`` switches off the process-wide access logger: the proxy, started by gated after
    its logging is set up, must not take gated's own request lines with it."""
    from kanmon.web.credproxy_servers import ProxyServers

    async def app(scope: Any, receive: Any, send: Any) -> None:
        """Never called: the proxy only starts listening here."""

    stream = io.StringIO()
    configure_logging("INFO", "json", stream, access=True)
    servers = ProxyServers(app, 0)
    try:
        await servers.ensure("127.0.0.1")
    finally:
        await servers.close()
    logging.getLogger(ACCESS_LOGGER).info('%s - "%s %s HTTP/%s" %d', "c", "GET", "/healthz", "1.1", 200)
    assert [json.loads(line)["path"] for line in stream.getvalue().splitlines() if '"path"' in line] == ["/healthz"]
