"""Keys that never enter the agent (issue 19): a real ``gated run --log-level debug`` serves the credential proxy.

The probe agent (``tests/probe_agent.py``) of a group with ``--upstream anthropic`` calls the API it was given
(``ANTHROPIC_BASE_URL`` + ``ANTHROPIC_API_KEY``, as Anthropic's SDK would) and reports what came back. The API is a
local HTTP server standing in for api.anthropic.com (unreachable from here): it records what reached it and answers
in three chunks. The real key is planted in gated's environment and must reach the upstream and nothing else: not
the agent's environment, stdin document, argv or files, not ``docker inspect``, not gated's DEBUG log or the store.
After the run, its token is refused (401) and the upstream sees nothing more.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from kanmon.store import Store
from tests.gated_process import Gated
from tests.ports import free_port
from tests.probe_world import RELEASE, agent_containers, install_probe, probe_reports, wait_for
from tests.probe_world import gated_cli as gated

KEY_SOURCE = "KANMON_TEST_UPSTREAM_KEY"
# an Anthropic-shaped event stream: its usage (25 in, 15 out) is what the proxy counts for the run
CHUNKS = [
    b"event: message_start\n"
    b'data: {"type": "message_start", "message": {"usage": {"input_tokens": 25, "output_tokens": 1}}}\n\n',
    b'event: content_block_delta\ndata: {"type": "content_block_delta", "delta": {"text": "hi"}}\n\n',
    b'event: message_delta\ndata: {"type": "message_delta", "usage": {"output_tokens": 15}}\n\n',
]


class FakeAnthropic(ThreadingHTTPServer):
    """Records each request's path and headers; answers chunked, in :data:`CHUNKS`."""

    daemon_threads = True

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeAnthropic
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        self.server.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for chunk in CHUNKS:
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def upstream() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def holding(root: Path, key: str) -> list[str]:
    return [str(path) for path in sorted(root.rglob("*")) if path.is_file() and key.encode() in path.read_bytes()]


@pytest.mark.parametrize("runtime", ["process", pytest.param("docker", marks=pytest.mark.docker)])
def test_an_agent_reaches_its_api_through_gated_and_never_holds_the_key(
    request: pytest.FixtureRequest, tmp_path: Path, upstream: FakeAnthropic, runtime: str
) -> None:
    key = f"sk-ant-planted-{uuid.uuid4().hex}"
    port = free_port()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o755)
    (data_dir / "kanmon.yaml").write_text(
        f"secrets:\n  ANTHROPIC_API_KEY: {{env: {KEY_SOURCE}}}\n"
        f"credential_proxy:\n  port: {port}\n  upstreams:\n    anthropic: {{base_url: '{upstream.url}/api'}}\n"
    )
    docker_client: Any = request.getfixturevalue("docker_client") if runtime == "docker" else None
    network = f"kanmon-test-proxy-{uuid.uuid4().hex[:8]}"
    options = ["--upstream", "anthropic", "--env", "PROBE_CALL=/v1/messages", "--env", f"PROBE_WAIT_FOR={RELEASE}",
               "--env", "PROBE_ENV=ANTHROPIC_BASE_URL,ANTHROPIC_API_KEY"]  # fmt: skip
    group_dir = data_dir / "groups" / "corp"
    if runtime == "docker":
        docker_client.networks.create(network, driver="bridge")
        options += ["--image", request.getfixturevalue("echo_image"), "--network", network]
        gated(data_dir, "group", "add", "corp", *options)
        gated(data_dir, "group", "set", "corp", *install_probe(runtime, group_dir))
    else:  # on loopback: no network needed; the process runtime needs its command from the start
        group_dir.mkdir(parents=True)
        gated(data_dir, "group", "add", "corp", *options, *install_probe(runtime, group_dir))
    gated(data_dir, "route", "add", "--target", "corp")
    env = {KEY_SOURCE: key, "KANMON_POLL_INTERVAL": "0.2"}
    gate = Gated(data_dir, tmp_path / "gated.log", args=["--http", "127.0.0.1:0", "--log-level", "debug"], env=env)
    store = Store.open(f"sqlite:///{data_dir / 'kanmon.db'}")
    try:
        gate.start()
        gate.wait_logged("gated running", timeout=60)
        gated(data_dir, "send", "telegram:1", "call your API")
        [seen] = probe_reports(store, 1, gate)

        # the call went through, streamed, and reached the upstream with the real key, never the run's token
        assert seen["call"]["status"] == 200 and "".join(seen["call"]["body"]) == b"".join(CHUNKS).decode(), seen
        token, base_url = seen["env"]["ANTHROPIC_API_KEY"], seen["env"]["ANTHROPIC_BASE_URL"]
        assert token.startswith("kanmon-run-") and key not in token
        assert re.fullmatch(rf"http://[0-9.]+:{port}/anthropic", base_url), base_url
        [call] = upstream.seen
        assert call["path"] == "/api/v1/messages" and call["body"] == b'{"probe": true}'
        assert call["headers"]["x-api-key"] == key and token not in json.dumps(call["headers"])
        assert seen["secrets"] == {} and seen["secret_in_env"] is False  # the key is not even on stdin

        # while the run lives: the key is not in the agent's environment or argv, nor in its container
        live: dict[str, bytes] = {}
        if runtime == "process":
            for part in ("environ", "cmdline"):
                live[part] = Path(f"/proc/{seen['pid']}/{part}").read_bytes()
        else:
            [container] = agent_containers(docker_client, gate)
            info = docker_client.api.inspect_container(container.id)
            live["docker inspect"] = json.dumps(info).encode()
            live["environ"] = Path(f"/proc/{info['State']['Pid']}/environ").read_bytes()
            assert token.encode() in live["docker inspect"]  # the placeholder is there, as it may be
        assert [where for where, data in live.items() if key.encode() in data] == []

        (group_dir / RELEASE).write_text("")
        wait_for(lambda: [r for r in store.recent_runs() if r.status == "ok"], "the run to end", gate)

        # the run ended: its token is refused and nothing more reaches the upstream; no other host is reachable
        proxy = base_url.rsplit("/", 1)[0]
        with httpx.Client(timeout=30) as client:
            late = client.post(f"{proxy}/anthropic/v1/messages", headers={"x-api-key": token}, json={})
            elsewhere = client.post(f"{proxy}/example.com/v1/messages", headers={"x-api-key": token}, json={})
            url = re.search(r"http=(http://[0-9.:]+)", gate.logged()).group(1)  # type: ignore[union-attr]
            metrics = client.get(f"{url}/metrics").text
        assert (late.status_code, elsewhere.status_code) == (401, 404)
        assert len(upstream.seen) == 1
        assert 'kanmon_proxy_requests_total{outcome="2xx",upstream="anthropic"} 1.0' in metrics
        assert 'kanmon_proxy_tokens_total{kind="output",upstream="anthropic"} 15.0' in metrics
        assert 'kanmon_proxy_requests_total{outcome="refused",upstream="anthropic"} 1.0' in metrics
        assert key not in metrics
        assert gate.stop() == 0
    finally:
        gate.stop()
        store.close()
        if runtime == "docker":
            docker_client.networks.get(network).remove()

    assert holding(data_dir, key) == []  # the store, its WAL, the run directories, the group folder
    # the agent reported no usage: what its API's answers stated is recorded as the run's usage
    total = json.loads(gated(data_dir, "usage", "--json"))["total"]
    assert (total["input_tokens"], total["output_tokens"]) == (25, 15), total
    log = gate.logged()
    assert "credential proxy listening" in log and key not in log
