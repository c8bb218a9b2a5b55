"""A real Synapse, a real gated, the real Matrix adapter, and matrix-nio clients playing the humans.

``scripts/services.sh`` (scripts/synapse.sh) starts Synapse and exports ``KANMON_TEST_SYNAPSE_URL`` and
``KANMON_TEST_SYNAPSE_SECRET``; accounts are made with the registration shared secret (Synapse admin API,
``/_synapse/admin/v1/register``). :class:`Stack` runs ``gated run`` and ``gated adapter matrix`` as child processes
on one data dir configured by a ``kanmon.yaml``, with an ``echo`` group on the process runtime and a route for
``platform=matrix``; it reads what gated stored straight from its SQLite store.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from nio import (
    AsyncClient,
    RoomCreateResponse,
    RoomMessagesResponse,
    RoomSendResponse,
    SyncResponse,
    UploadResponse,
)

from kanmon.store import Message, Store, upgrade
from tests.gated_process import GATED, Gated
from tests.gateway_harness import process_group
from tests.ports import free_port

CHANNEL_SECRET = "matrix-test-channel-secret"
HUMAN_FILTER = {"room": {"timeline": {"limit": 100}}}  # Synapse sends at most 100 a room; gaps are read back


@dataclass(frozen=True)
class Account:
    user_id: str
    password: str
    access_token: str


@dataclass(frozen=True)
class Homeserver:
    url: str
    secret: str
    server_name: str

    def register(self, prefix: str) -> Account:
        """A new user ``@<prefix>-<random>:<server>`` (shared-secret registration)."""
        localpart = f"{prefix}-{secrets.token_hex(4)}"
        password = secrets.token_urlsafe(12)
        endpoint = f"{self.url}/_synapse/admin/v1/register"
        with httpx.Client(timeout=30) as http:
            nonce = http.get(endpoint).json()["nonce"]
            mac = hmac.new(self.secret.encode(), digestmod=hashlib.sha1)
            mac.update(f"{nonce}\0{localpart}\0{password}\0notadmin".encode())
            answer = http.post(
                endpoint,
                json={"nonce": nonce, "username": localpart, "password": password, "admin": False,
                      "mac": mac.hexdigest()},
            )  # fmt: skip
            answer.raise_for_status()
        body = answer.json()
        return Account(body["user_id"], password, body["access_token"])


@dataclass
class Human:
    """A person in Matrix: a nio client that sends and keeps every event it sees."""

    client: AsyncClient
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # room id -> timeline, in order
    _token: str | None = None

    @classmethod
    async def login(cls, homeserver: Homeserver, account: Account) -> Human:
        client = AsyncClient(homeserver.url, account.user_id)
        client.restore_login(account.user_id, "", account.access_token)
        human = cls(client)
        await human.sync()
        return human

    @property
    def user_id(self) -> str:
        return str(self.client.user_id)

    async def sync(self, timeout_ms: int = 0) -> None:
        answer = await self.client.sync(
            timeout=timeout_ms, since=self._token, full_state=self._token is None, sync_filter=HUMAN_FILTER
        )
        assert isinstance(answer, SyncResponse), answer
        for room_id, info in answer.rooms.join.items():
            timeline = self.events.setdefault(room_id, [])
            if info.timeline.limited and timeline and self._token and info.timeline.prev_batch:
                timeline.extend(await self._gap(room_id, info.timeline.prev_batch, self._token))  # as clients do
            timeline.extend(e.source for e in info.timeline.events)
        self._token = answer.next_batch

    async def _gap(self, room_id: str, start: str, since: str) -> list[dict[str, Any]]:
        """The events a limited timeline left out (Synapse sends at most 100 per room and sync), oldest first."""
        found: list[dict[str, Any]] = []
        while True:
            page = await self.client.room_messages(room_id, start=start, end=since, limit=100)
            assert isinstance(page, RoomMessagesResponse), page
            found.extend(e.source for e in page.chunk)
            if not page.chunk or not page.end or page.end == start:
                return found[::-1]
            start = page.end

    async def create_room(self, *invite: str, name: str | None = None, direct: bool = False) -> str:
        answer = await self.client.room_create(name=name, invite=list(invite), is_direct=direct)
        assert isinstance(answer, RoomCreateResponse), answer
        return str(answer.room_id)

    async def send(self, room_id: str, content: dict[str, Any] | str, event_type: str = "m.room.message") -> str:
        if isinstance(content, str):
            content = {"msgtype": "m.text", "body": content}
        answer = await self.client.room_send(room_id, event_type, content)
        assert isinstance(answer, RoomSendResponse), answer
        return str(answer.event_id)

    async def upload(self, data: bytes, mime: str, name: str) -> str:
        import io

        answer, _ = await self.client.upload(io.BytesIO(data), content_type=mime, filename=name, filesize=len(data))
        assert isinstance(answer, UploadResponse), answer
        return str(answer.content_uri)

    def from_user(self, room_id: str, user_id: str) -> list[dict[str, Any]]:
        """The messages ``user_id`` posted in ``room_id`` that this human has seen."""
        return [
            e for e in self.events.get(room_id, []) if e.get("sender") == user_id and e.get("type") == "m.room.message"
        ]

    async def wait(self, condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
            await self.sync(timeout_ms=500)

    async def joined(self, room_id: str, user_id: str, timeout: float = 30.0) -> None:
        """Wait until ``user_id`` has joined ``room_id`` (as this human sees it)."""

        def done() -> bool:
            room = self.client.rooms.get(room_id)
            return room is not None and user_id in room.users and user_id not in room.invited_users

        await self.wait(done, f"{user_id} to join {room_id}", timeout)

    async def close(self) -> None:
        await self.client.close()


@dataclass
class Stack:
    """gated + the Matrix adapter as child processes on ``data_dir``; ``bot`` is the adapter's account."""

    data_dir: Path
    homeserver: Homeserver
    bot: Account
    inviters: list[str]
    http_port: int = field(default_factory=free_port)
    adapter_port: int = field(default_factory=free_port)
    gated: Gated | None = None
    adapter: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def adapter_url(self) -> str:
        return f"http://127.0.0.1:{self.adapter_port}"

    @property
    def gated_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def adapter_log(self) -> Path:
        return self.data_dir / "adapter.log"

    def configure(self, group_env: dict[str, Any] | None = None) -> None:
        """Write kanmon.yaml (secrets included, as an operator would) and the echo group and its route."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "http": {"listen": f"127.0.0.1:{self.http_port}", "channel_secret": CHANNEL_SECRET},
            "runtime": {"default": "process"},
            "delivery": {"retry_base_delay": 0.2},
            "matrix": {
                "homeserver": self.homeserver.url, "user_id": self.bot.user_id, "password": self.bot.password,
                "allowed_inviters": self.inviters, "listen": f"127.0.0.1:{self.adapter_port}",
            },
        }  # fmt: skip
        (self.data_dir / "kanmon.yaml").write_text(yaml.safe_dump(config))
        store = Store.open(f"sqlite:///{self.data_dir / 'kanmon.db'}")
        upgrade(store.engine)
        store.add_group(process_group("echo", env=group_env))
        store.add_route(seq=1, match="platform=matrix", target="echo")
        store.close()

    def start(self) -> None:
        """Start gated and the adapter side by side (the adapter retries gated until it answers); wait for both."""
        self.start_gated(wait=False)
        self.start_adapter(wait=False)
        self.wait_gated()
        self.wait_adapter_synced()

    def start_gated(self, *, wait: bool = True) -> None:
        self.gated = Gated(self.data_dir, self.data_dir / "gated.log", args=[], env=self.env).start()
        if wait:
            self.wait_gated()

    def wait_gated(self) -> None:
        assert self.gated is not None
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.gated_url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.gated.alive, self.gated.logged()
            assert time.monotonic() < deadline, f"gated did not answer:\n{self.gated.logged()}"
            time.sleep(0.1)

    def start_adapter(self, *, wait: bool = True) -> None:
        with self.adapter_log.open("ab") as log:
            self.adapter = subprocess.Popen(
                [*GATED, "--data-dir", str(self.data_dir), "adapter", "matrix"],
                stdout=log, stderr=log, env={**os.environ, **self.env},
            )  # fmt: skip
        if wait:
            self.wait_adapter_synced()

    def wait_adapter_synced(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.adapter is not None and self.adapter.poll() is None, self.adapter_logged()
            try:
                if httpx.get(f"{self.adapter_url}/health", timeout=2).json().get("synced"):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            assert time.monotonic() < deadline, f"the adapter did not sync:\n{self.adapter_logged()}"
            time.sleep(0.1)

    def kill_adapter(self) -> None:
        assert self.adapter is not None
        self.adapter.send_signal(signal.SIGKILL)
        self.adapter.wait(30)

    def stop(self) -> None:
        if self.adapter is not None and self.adapter.poll() is None:
            self.adapter.send_signal(signal.SIGTERM)
            try:
                self.adapter.wait(30)
            except subprocess.TimeoutExpired:
                self.adapter.kill()
        if self.gated is not None:
            self.gated.stop()

    def adapter_logged(self) -> str:
        return self.adapter_log.read_text(errors="replace") if self.adapter_log.exists() else ""

    def messages(self, direction: str | None = None, chat_jid: str | None = None) -> list[Message]:
        """What gated stored, in seq order (read from its SQLite store)."""
        store = Store.open(f"sqlite:///{self.data_dir / 'kanmon.db'}")
        try:
            rows = store.new_messages(0, limit=1_000_000)
        finally:
            store.close()
        return [r for r in rows if (direction is None or r.direction == direction) and chat_jid in (None, r.chat_jid)]

    async def wait_stored(self, condition: Callable[[list[Message]], bool], what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition(await asyncio.to_thread(self.messages)):
            assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{self.adapter_logged()[-3000:]}"
            await asyncio.sleep(0.1)


def homeserver_from_env() -> Homeserver | None:
    url = os.environ.get("KANMON_TEST_SYNAPSE_URL")
    secret = os.environ.get("KANMON_TEST_SYNAPSE_SECRET")
    if not url or not secret:
        return None
    return Homeserver(url, secret, os.environ.get("KANMON_TEST_SYNAPSE_SERVER_NAME", "localhost"))


async def room_with_bot(alice: Human, stack: Stack, *others: str, name: str | None = "kanmon test") -> str:
    """A room alice made and invited the bot (and ``others``) to, once the bot has joined."""
    room_id = await alice.create_room(stack.bot.user_id, *others, name=name)
    await alice.joined(room_id, stack.bot.user_id)
    return room_id
