"""Short-lived signed download links to the media store, for channel adapters (issue 14, item 4).

An adapter gets ``<base>/media/<sha256>?exp=<unix seconds>&sig=<signature>`` in ``/send``: anyone holding the link
may fetch that one file until ``exp`` (``media.url_ttl`` after it was made, 900 s by default), nobody can make one
for another file or a later time. The signature is HMAC-SHA256 over ``"kanmon-media:<sha256>:<exp>"`` with a key
only this gated knows: 32 random bytes kept in ``<data_dir>/media/url.key`` (mode 0600, made on first use; a
standby beside the same data dir reads the same one). It is compared in constant time (``hmac.compare_digest``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from urllib.parse import urlencode

from kanmon.clock import Clock
from kanmon.gateway.media import is_sha256

__all__ = ["KEY_BYTES", "MediaLinks", "load_key"]

KEY_BYTES = 32


def load_key(path: Path) -> bytes:
    """The signing key kept at ``path``, made (32 random bytes, mode 0600) when there is none. Blocking.

    Raises ``OSError`` when it can neither be read nor made, ``ValueError`` for a file that is not a key.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise ValueError(f"{path} is not a media signing key ({len(key)} bytes, not {KEY_BYTES}): remove it")
    return key


class MediaLinks:
    """Makes and checks signed download links; ``ttl`` in seconds, times from ``clock``.

    ``base_url`` (``http://host:port``, no trailing slash needed) is where adapters reach gated's HTTP surface; gated
    sets it to ``media.public_url`` or its own listen address once it listens. The key is read on first use
    (``key`` given: that one).
    """

    def __init__(self, key_path: Path, *, ttl: float, clock: Clock, base_url: str = "", key: bytes | None = None):
        self.key_path = key_path
        self.ttl = ttl
        self.base_url = base_url
        self._clock = clock
        self._key = key

    def _signature(self, sha256: str, expires: int) -> str:
        if self._key is None:
            self._key = load_key(self.key_path)
        mac = hmac.new(self._key, f"kanmon-media:{sha256}:{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def url(self, sha256: str) -> str:
        """The download link of the file ``sha256``, valid for ``ttl`` seconds from now. Raises ``ValueError`` for
        a value that is not a sha256."""
        if not is_sha256(sha256):
            raise ValueError(f"not a sha256: {sha256[:80]!r}")
        expires = int(self._clock.now().timestamp() + self.ttl) + 1
        query = urlencode({"exp": expires, "sig": self._signature(sha256, expires)})
        return f"{self.base_url.rstrip('/')}/media/{sha256}?{query}"

    def valid(self, sha256: str, expires: str, signature: str) -> bool:
        """True when ``signature`` is this gated's for ``sha256`` until ``expires`` and that time has not passed."""
        if not is_sha256(sha256) or not (expires.isascii() and expires.isdigit() and len(expires) <= 12):
            return False
        good = self._signature(sha256, int(expires)).encode()
        matches = hmac.compare_digest(good, signature.encode("utf-8", "surrogatepass"))
        return matches and int(expires) > self._clock.now().timestamp()
