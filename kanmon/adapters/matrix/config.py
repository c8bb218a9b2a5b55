"""What the Matrix adapter needs to know, taken from gated's settings (``matrix.*`` keys, SPEC §13).

The adapter reads the same ``kanmon.yaml`` and ``KANMON_*`` variables as gated, so one file configures both; its
keys are declared with every other in :mod:`kanmon.gated.config_keys`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kanmon.errors import InvalidInput
from kanmon.gated.settings import Settings, browser_url

__all__ = ["ADAPTER_NAME", "JID_PREFIX", "MatrixConfig"]

ADAPTER_NAME = "matrix"
JID_PREFIX = "matrix:"


@dataclass(frozen=True, kw_only=True)
class MatrixConfig:
    """The adapter's settings as plain values; secrets are never in ``repr``."""

    homeserver: str
    user_id: str
    access_token: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    channel_secret: str = field(default="", repr=False)
    allowed_inviters: tuple[str, ...] = ()
    listen_host: str = "127.0.0.1"
    listen_port: int = 8090
    url: str = "http://127.0.0.1:8090"  # where gated reaches this adapter
    gated_url: str = "http://127.0.0.1:8080"
    state_dir: Path = Path("kanmon-data/adapters/matrix")
    max_message_bytes: int = 32000
    sync_timeout_ms: int = 30000  # how long one /sync waits for news
    request_timeout: float = 30.0  # seconds one request to the homeserver may take (a /sync: its wait on top)
    max_file_bytes: int = 50 << 20  # largest outbound attachment fetched from a URL

    @classmethod
    def from_settings(
        cls, settings: Settings, *, gated_url: str | None = None, listen: str | None = None
    ) -> MatrixConfig:
        """The adapter's config from gated's ``settings`` and the command's flags.

        Raises :class:`InvalidInput` (one line, naming the key) when something it cannot start without is missing.
        """
        matrix = settings.matrix
        missing = [
            f"{key} (KANMON_{key.upper().replace('.', '_')})"
            for key, value in (
                ("matrix.homeserver", matrix.homeserver),
                ("matrix.user_id", matrix.user_id),
                ("http.channel_secret", settings.http.channel_secret),
            )
            if not value
        ]
        if not matrix.access_token and not matrix.password:
            missing.append("matrix.access_token or matrix.password")
        if missing:
            raise InvalidInput(f"gated adapter matrix: set {', '.join(missing)}")
        address = listen or matrix.listen
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise InvalidInput(f"--listen {address!r}: expected HOST:PORT, e.g. 127.0.0.1:8090")
        host = host.removeprefix("[").removesuffix("]")
        url = matrix.url or browser_url(host, port)
        gated = gated_url or matrix.gated_url or settings.http.local_url
        if not gated.startswith(("http://", "https://")):
            raise InvalidInput(f"--gated {gated!r}: expected an http:// or https:// URL, e.g. http://127.0.0.1:8080")
        return cls(
            homeserver=matrix.homeserver.rstrip("/"),
            user_id=matrix.user_id,
            access_token=matrix.access_token,
            password=matrix.password,
            channel_secret=settings.http.channel_secret,
            allowed_inviters=matrix.allowed_inviters,
            listen_host=host,
            listen_port=int(port),
            url=url.rstrip("/"),
            gated_url=gated.rstrip("/"),
            state_dir=settings.data_dir / "adapters" / ADAPTER_NAME,
            max_message_bytes=matrix.max_message_bytes,
        )
