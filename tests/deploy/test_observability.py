"""What an operator watches, checked on a real ``gated run`` (issue 18 items 5 and 6): /metrics, the shipped Grafana
dashboard and Prometheus alerts, and log lines with their context.

One gated per log format, with HTTP, a registered channel adapter (a real HTTP server here that refuses its first
three tries with 503 and echoes the credentials it got, so a delivery is retried and logged), a group answered by
the echo agent and a group whose agent always fails (one attempt: a dead letter). Traffic: a message from the
adapter's platform (a run, a delivery to the adapter), the web chat (a post, the event stream with ``?token=``), a
message to the failing group. Then:

* ``promtool check metrics`` passes on the live ``/metrics``, and ``promtool check rules`` on deploy/prometheus;
* every series the dashboard and the alert rules query is in that ``/metrics``;
* JSON mode: every line stderr got is one JSON object (the "stopping" notice too), the lines about the run, the
  delivery and the dead letter carry their ids as keys, uvicorn's access lines have their fields and no token;
* text mode: a line shows each id once; no ANSI colour codes in either (stderr is a pipe, not a terminal).

promtool comes from Debian's ``prometheus`` package (scripts/services.sh installs it); without it the promtool checks
skip loudly, or fail under CI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from kanmon.container import echo_agent
from kanmon.gateway.adapters import AdapterDeliveryConfig
from tests.conftest import service_missing
from tests.live_gated import GATED, QUICK_TRIES, FakeAdapter, Output, gated, serving_adapter, wait_until

ROOT = Path(__file__).parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "kanmon.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
CHANNEL_SECRET = "chan-SECRET-9a8b7c6d5e"
SERIES = re.compile(r"\b((?:kanmon|process|python)_[a-z0-9_]+)\b")
IDS = ("run_id", "lane", "chat", "folder", "attempt")


@pytest.fixture
def adapter() -> Iterator[FakeAdapter]:
    with serving_adapter() as server:
        yield server


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        service_missing("promtool", "install Debian's prometheus package (scripts/services.sh does)")
    assert found is not None
    return found


class Served:
    """What one gated wrote and served: its stderr lines, its /metrics after the traffic, the tokens it saw."""

    def __init__(self, lines: list[str], metrics: str, tokens: dict[str, str]) -> None:
        self.lines, self.metrics, self.tokens = lines, metrics, tokens


def serve_with_traffic(data_dir: Path, adapter: FakeAdapter, fmt: str) -> Served:
    """Set up a data dir, start ``gated run --log-format fmt``, make the traffic, scrape, stop it."""
    data_dir.mkdir()
    config = f"http:\n  channel_secret: {CHANNEL_SECRET}\ndelivery:\n  retry_base_delay: 0.2\nlog:\n  access: true\n"
    (data_dir / "kanmon.yaml").write_text(config)
    echo = f"{sys.executable} -I {echo_agent.__file__}"
    added = gated(data_dir, "group", "add", "corp", "--runtime", "process", "--command", echo, "--web")
    web_token = re.search(r"#token=([A-Za-z0-9_-]+)$", added, re.M).group(1)  # type: ignore[union-attr]
    failing = f"{sys.executable} -I -c 'raise SystemExit(3)'"
    gated(data_dir, "group", "add", "flaky", "--runtime", "process", "--command", failing)
    gated(data_dir, "route", "add", "--match", "platform=telegram", "--target", "corp")
    env = {**os.environ, "KANMON_POLL_INTERVAL": "0.2", "KANMON_MAX_ATTEMPTS": "1"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [*GATED, "--data-dir", str(data_dir), "run", "--http", "127.0.0.1:0", "--log-format", fmt],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    stderr = Output(proc)
    try:
        started = wait_until(lambda: stderr.find("gated running"), "gated to start")
        url = re.search(r"http=(http://[0-9.:]+)", started).group(1)  # type: ignore[union-attr]
        adapter_token, metrics = traffic(url, web_token, adapter, data_dir, stderr)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    stderr.join()
    return Served(stderr.lines, metrics, {"web token": web_token, "adapter token": adapter_token})


def traffic(url: str, web_token: str, adapter: FakeAdapter, data_dir: Path, stderr: Output) -> tuple[str, str]:
    """A run answered to the adapter (delivered on a retry), web chat traffic, a dead letter; returns the adapter's
    token and /metrics once all of it is done."""
    with httpx.Client(base_url=url, timeout=30) as client:
        secret = {"Authorization": f"Bearer {CHANNEL_SECRET}"}
        registration = {"name": "tg", "url": adapter.url, "jid_prefixes": ["telegram:"]}
        registered = client.post("/v1/channels/register", json=registration, headers=secret)
        assert registered.status_code == 200, registered.text
        token = str(registered.json()["token"])
        message = {"id": "m-1", "chat_jid": "telegram:1", "sender": "telegram:2", "content": "hello"}
        ingested = client.post("/v1/messages", json=message, headers={"Authorization": f"Bearer {token}"})
        assert ingested.status_code == 200, ingested.text
        wait_until(lambda: len(adapter.received) > QUICK_TRIES, "the reply to reach the adapter on its retry")

        web = {"Authorization": f"Bearer {web_token}"}
        assert client.post("/web/corp/messages", json={"content": "hi", "topic": "t"}, headers=web).status_code == 200
        params = {"topic": "t", "token": web_token}
        with client.stream("GET", "/web/corp/stream", params=params) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            wait_until(lambda: next(lines).startswith("data:"), "an event")

        gated(data_dir, "send", "web:flaky", "doomed")
        wait_until(lambda: stderr.find("dead letter"), "the dead letter")
        client.get("/metrics")  # one scrape so /metrics' own request series exist in the next
        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        return token, metrics.text


def sample_names(metrics: str) -> set[str]:
    return {sample.name for family in text_string_to_metric_families(metrics) for sample in family.samples}


def queried_series() -> dict[str, set[str]]:
    """The series each shipped file queries: every expression of the dashboard's panels and the alert rules."""
    dashboard = json.loads(DASHBOARD.read_text())
    panel_exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    rules = yaml.safe_load(ALERTS.read_text())
    rule_exprs = [str(rule["expr"]) for group in rules["groups"] for rule in group["rules"]]
    return {
        "dashboard": {name for expr in panel_exprs for name in SERIES.findall(expr)},
        "alerts": {name for expr in rule_exprs for name in SERIES.findall(expr)},
    }


# ---------------------------------------------------------------------------------------------------- tests
def test_the_alert_rules_pass_promtool() -> None:
    done = subprocess.run([promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 5 rules found" in done.stdout


def test_the_dashboard_is_grafana_json_with_the_panels_an_operator_needs() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "kanmon-gated" and dashboard["schemaVersion"] >= 36
    queried = queried_series()["dashboard"]
    needed = {
        "kanmon_messages_ingested_total", "kanmon_cursor_lag", "kanmon_queue_running", "kanmon_queue_waiting",
        "kanmon_runs_total", "kanmon_run_seconds_bucket", "kanmon_dead_letters_total", "kanmon_delivery_backlog",
        "kanmon_deliveries_total", "kanmon_delivery_lag_seconds_bucket",
    }  # fmt: skip
    assert needed <= queried
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool parses PromQL in rule files: each panel query, Grafana's variables filled in, as a recording rule
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    filled = [expr.replace("$__rate_interval", "5m").replace("$job", ".*") for expr in exprs]
    rules = {
        "groups": [
            {"name": "dashboard", "rules": [{"record": f"dashboard:q{i}", "expr": e} for i, e in enumerate(filled)]}
        ]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in done.stdout


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_a_live_gated_serves_linted_metrics_and_logs_lines_with_their_context(
    tmp_path: Path, adapter: FakeAdapter, fmt: str
) -> None:
    tool = promtool() if fmt == "json" else None  # the metrics checks once: they do not depend on the log format
    served = serve_with_traffic(tmp_path / "data", adapter, fmt)
    lines = served.lines

    leaks = [line for line in lines for token in (*served.tokens.values(), CHANNEL_SECRET) if token in line]
    assert leaks == []
    assert not any("\x1b" in line for line in lines)  # a pipe, not a terminal: no colour codes

    if fmt == "json":
        assert tool is not None
        check_metrics(tool, served.metrics)
        check_json_lines(lines)
    else:
        check_text_lines(lines)


def test_with_json_logs_a_command_error_is_a_json_line_too(tmp_path: Path) -> None:
    done = subprocess.run(
        [*GATED, "--data-dir", str(tmp_path), "run", "--http", "127.0.0.1:99999", "--log-format", "json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    entry = json.loads(line)
    assert entry["level"] == "ERROR" and "out of range" in entry["message"] and entry["exit_code"] == 2


def check_metrics(tool: str, metrics: str) -> None:
    linted = subprocess.run([tool, "check", "metrics"], input=metrics, capture_output=True, text=True, check=False)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    names = sample_names(metrics)
    for shipped, queried in queried_series().items():
        assert queried - names == set(), f"{shipped} queries series gated does not export"
    assert not any(name.endswith("_created") for name in names)
    assert {"kanmon_build_info", "process_cpu_seconds_total", "python_info"} <= names
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
    }
    assert samples[("kanmon_dead_letters_total", (("folder", "flaky"),))] == 1
    assert samples[("kanmon_runs_total", (("folder", "corp"), ("result", "ok")))] >= 1
    assert samples[("kanmon_store_up", ())] == 1
    assert samples[("kanmon_delivery_backlog", (("channel", "tg"),))] == 0  # delivered by now
    routes = {
        dict(labels).get("route") for name, labels in samples if name == "kanmon_http_request_duration_seconds_count"
    }
    assert "/web/{folder:path}/messages" in routes and "/v1/messages" in routes  # templates, never raw paths
    lag_bounds = [dict(labels)["le"] for name, labels in samples if name == "kanmon_delivery_lag_seconds_bucket"]
    assert str(float(AdapterDeliveryConfig().deadline)) in lag_bounds  # the last bucket is the delivery deadline


def check_json_lines(lines: list[str]) -> None:
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"a line that is not JSON: {line!r}")

    def about(text: str, **fields: Any) -> list[dict[str, Any]]:
        return [e for e in entries if text in e["message"] and all(e.get(k) == v for k, v in fields.items())]

    [start] = about("run start", chat="telegram:1")
    [finish] = about("run finish", chat="telegram:1")
    for entry in (start, finish):
        assert (entry["lane"], entry["folder"], entry["attempt"]) == ("corp", "corp", 1)
        assert entry["run_id"] == start["run_id"]
    assert finish["result"] == "ok"
    retried = about("delivery of seq=", chat="telegram:1")
    assert retried and all(e["channel"] == "tg" and e["attempt"] == 1 for e in retried)
    [dead] = about("dead letter")
    assert (dead["lane"], dead["folder"], dead["chat"], dead["attempt"]) == ("flaky", "flaky", "web:flaky", 1)
    assert about("stopping")  # the notice for a person is this JSON line, not a plain one
    access = [e for e in entries if e["logger"] == "uvicorn.access"]
    stream = [e for e in access if e["path"].startswith("/web/corp/stream")]
    assert stream and all("token=[redacted]" in e["path"] and e["method"] == "GET" for e in stream)
    assert all(e["status"] == 200 for e in stream)


def check_text_lines(lines: list[str]) -> None:
    finish = next(line for line in lines if "run finish" in line and "chat=telegram:1" in line)
    for name in IDS:
        assert finish.count(f" {name}=") == 1, finish
    run_id = re.search(r" run_id=(\S+)", finish).group(1)  # type: ignore[union-attr]
    assert finish.count(run_id) == 1, finish
    dead = next(line for line in lines if "dead letter" in line)
    assert dead.count("chat=web:flaky") == 1 and dead.count("lane=flaky") == 1, dead
