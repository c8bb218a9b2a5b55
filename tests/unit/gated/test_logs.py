"""configure_logging: JSON lines with extra fields, text lines with key=value, and no doubled lines."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from kanmon import redaction
from kanmon.gated.logs import HANDLER_NAME, NOISY_LOGGERS, configure_logging

TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
RUN = {"lane": "corp", "run_id": "r1", "duration": 1.2, "result": "ok"}


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    # the root logger is process-wide: leave it as pytest set it up
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    noisy = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name, old in noisy.items():
        logging.getLogger(name).setLevel(old)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_json_lines_carry_the_core_keys_and_the_extras() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    logging.getLogger("kanmon.gateway.loop").info("run %s finished", "r1", extra=RUN)
    [entry] = [json.loads(line) for line in lines(stream)]
    assert re.fullmatch(TIME, entry.pop("time"))
    assert entry == {"level": "INFO", "logger": "kanmon.gateway.loop", "message": "run r1 finished", **RUN}


def test_json_keeps_a_traceback_and_survives_values_that_are_not_json() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("kanmon.x").exception("failed", extra={"path": io.StringIO, "time": "mine"})
    [entry] = [json.loads(line) for line in lines(stream)]
    assert entry["level"] == "ERROR"
    assert "Traceback" in entry["exc"] and "ValueError: boom" in entry["exc"]
    assert "StringIO" in entry["path"]
    assert entry["time"] != "mine"  # an extra never overwrites a core key


def test_text_lines_show_the_time_level_logger_and_extras() -> None:
    stream = io.StringIO()
    configure_logging("info", "text", stream)
    logging.getLogger("kanmon.gateway.loop").info("run finished", extra=RUN)
    logging.getLogger("kanmon.gateway.loop").info("said", extra={"text": "two words", "empty": ""})
    first, second = lines(stream)
    assert re.fullmatch(
        TIME + r" INFO kanmon\.gateway\.loop: run finished lane=corp run_id=r1 duration=1\.2 result=ok", first
    )
    assert second.endswith(': said text="two words" empty=""')


def test_text_puts_the_traceback_after_the_line() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "text", stream)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("kanmon.x").exception("failed", extra={"lane": "corp"})
    first, *rest = lines(stream)
    assert first.endswith("ERROR kanmon.x: failed lane=corp")
    assert rest[0].startswith("Traceback") and rest[-1] == "ValueError: boom"


def test_configuring_again_replaces_the_handler_instead_of_stacking_it() -> None:
    old, new = io.StringIO(), io.StringIO()
    configure_logging("INFO", "text", old)
    configure_logging("INFO", "json", new)
    configure_logging("INFO", "json", new)
    logging.getLogger("kanmon.x").info("once")
    assert old.getvalue() == ""
    assert [json.loads(line)["message"] for line in lines(new)] == ["once"]
    assert sum(h.get_name() == HANDLER_NAME for h in logging.getLogger().handlers) == 1


def test_the_level_filters_and_noisy_libraries_are_quiet_at_info() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "text", stream)
    logging.getLogger("kanmon.x").debug("hidden")
    logging.getLogger("urllib3.connectionpool").info("GET /")
    logging.getLogger("uvicorn.access").info("200 OK")
    logging.getLogger("docker").warning("shown")
    assert [line.split(": ", 1)[1] for line in lines(stream)] == ["shown"]
    configure_logging("DEBUG", "text", stream)
    logging.getLogger("urllib3.connectionpool").debug("GET /")
    assert lines(stream)[-1].endswith(": GET /")


def test_an_error_level_also_silences_library_warnings() -> None:
    stream = io.StringIO()
    configure_logging("ERROR", "text", stream)
    logging.getLogger("docker").warning("hidden")
    logging.getLogger("kanmon.x").warning("hidden")
    assert stream.getvalue() == ""


@pytest.mark.parametrize(("level", "fmt"), [("LOUD", "text"), ("INFO", "xml")])
def test_an_unknown_level_or_format_is_refused(level: str, fmt: str) -> None:
    with pytest.raises(ValueError, match="unknown log"):
        configure_logging(level, fmt, io.StringIO())  # type: ignore[arg-type]


def test_the_secrets_it_is_given_never_appear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redaction, "SECRETS", redaction.SecretValues())
    stream = io.StringIO()
    configure_logging("DEBUG", "text", stream, secrets=["db-pass-4e1f", ""])
    logging.getLogger("kanmon.test").debug("connecting with db-pass-4e1f to %s", "postgresql://k:db-pass-4e1f@h/k")
    [line] = lines(stream)
    assert "db-pass-4e1f" not in line and line.endswith("connecting with [redacted] to postgresql://k:[redacted]@h/k")
