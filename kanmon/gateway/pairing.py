"""DM pairing (issue 16 item 1): a stranger in a direct chat gets one short code; an operator approves it.

The rules (after Hermes' ``gateway/pairing.py``, without its bug of a code that never expired):

- a code is 8 characters from a 32-character alphabet without ``0 O 1 I``, drawn from an injected random source
  (:class:`secrets.SystemRandom` in production); only an HMAC-SHA256 of it under a random salt is stored, and a
  typed code is compared with every live one in constant time (:func:`hmac.compare_digest`);
- it expires ``auth.pairing_ttl`` seconds after it was made (default 1 h), judged by the injected clock against the
  stored time, so a gated restart neither loses nor extends it;
- a sender gets at most one code per ``auth.pairing_window`` (default 10 min), and none while it holds a live one:
  the code's message is stored in the same transaction as the code, so a sender who keeps writing is answered once;
- at most ``auth.pairing_max_pending`` live codes per platform (default 3);
- ``auth.pairing_max_failures`` wrong codes in a row (default 5) lock approval for an hour; a success unlocks.

``gated pairing approve CODE [--group F]`` and ``/pair CODE [F]`` from a root group call :func:`approve`: the sender
is added to the allowlist of its platform (in every group, or only in ``F``) and told so in its chat.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import random
import re
import secrets
from collections.abc import Callable

from kanmon.errors import InvalidInput
from kanmon.gateway.auth import AuthConfig, platform_of
from kanmon.gateway.channels import read_from_store
from kanmon.gateway.context import GATEWAY_ORIGIN
from kanmon.gateway.decisions import Refused
from kanmon.message_ids import derived_id
from kanmon.store import AllowEntry, Issued, NewMessage, NotFound, PairingCode, PairingRequest, Store

__all__ = [
    "ALPHABET",
    "CODE_LENGTH",
    "PairingError",
    "approve",
    "code_hash",
    "deny",
    "new_code",
    "normalise_code",
    "offer_code",
    "on_refused",
]

logger = logging.getLogger(__name__)

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
FAILURES_KEY = "pairing:failures"
LOCKOUT = dt.timedelta(hours=1)
_SEPARATORS = re.compile(r"[\s-]")


class PairingError(InvalidInput):
    """Raised when a pairing approval or denial cannot be done as asked; nothing was changed. One line."""


def new_code(rng: random.Random) -> str:
    """A fresh code: :data:`CODE_LENGTH` characters of :data:`ALPHABET`, drawn from ``rng``."""
    return "".join(rng.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(text: str) -> str:
    """``text`` as a code: upper case, spaces and dashes dropped. Raises :class:`PairingError` when it cannot be one."""
    code = _SEPARATORS.sub("", text).upper()
    if len(code) != CODE_LENGTH or any(ch not in ALPHABET for ch in code):
        raise PairingError(f"a pairing code is {CODE_LENGTH} characters of {ALPHABET}, got {text.strip()[:40]!r}")
    return code


def code_hash(salt: str, code: str) -> str:
    """The stored form of ``code``: hex HMAC-SHA256 under ``salt``."""
    return hmac.new(salt.encode(), code.encode(), hashlib.sha256).hexdigest()


def on_refused(
    store: Store, decision: Refused, config: AuthConfig, now: dt.datetime, rng: random.Random | None = None
) -> Issued | None:
    """What the loop does with a refused row (blocking): count its sender, and in a direct chat with pairing on,
    offer a code (:func:`offer_code`). Returns what the offer did, or None when no code was offered."""
    row = decision.message
    store.note_refused(row.chat_jid, row.sender, row.sender_name, row.seq, now)
    logger.info("refused seq=%d sender=%s: %s", row.seq, row.sender, decision.why)
    if not (decision.direct and config.pairing and row.sender):
        return None
    return offer_code(store, decision, config, now, rng or secrets.SystemRandom())


def offer_code(store: Store, decision: Refused, config: AuthConfig, now: dt.datetime, rng: random.Random) -> Issued:
    """Store a code for the refused row's sender and answer it with the code, unless it had one within the window,
    still holds a live one, or its platform has too many pending (then nothing is sent)."""
    row = decision.message
    code = new_code(rng)
    salt = f"{rng.getrandbits(128):032x}"
    platform = platform_of(row.chat_jid)
    minutes = max(1, round(config.pairing_ttl / 60))
    notice = NewMessage(
        chat_jid=row.chat_jid,
        id=derived_id("pair-", "offer", row.id),
        content=(
            f"I don't know you yet. Your pairing code is {code} (valid {minutes} min). Ask the operator to run "
            f"`gated pairing approve {code}`."
        ),
        direction="out",
        origin=GATEWAY_ORIGIN,
        topic=row.topic,
        reply_to_id=row.id,
        delivered=read_from_store(row.chat_jid),
    )
    request = PairingRequest(
        platform=platform,
        sender=row.sender,
        sender_name=row.sender_name,
        chat_jid=row.chat_jid,
        salt=salt,
        code_hash=code_hash(salt, code),
        now=now,
        expires_at=now + dt.timedelta(seconds=config.pairing_ttl),
        window_start=now - dt.timedelta(seconds=config.pairing_window),
        max_pending=config.pairing_max_pending,
        notice=notice,
    )
    issued = store.issue_pairing(request)
    if issued == "full":
        logger.warning("no pairing code for %s on %s: %d codes pending", row.sender, platform, request.max_pending)
    elif issued == "issued":
        logger.info("pairing code offered to %s (expires %s)", row.sender, request.expires_at)
    return issued


def approve(
    store: Store,
    text: str,
    *,
    by: str,
    now: dt.datetime,
    folder: str = "",
    config: AuthConfig | None = None,
    write: Callable[[NewMessage], None] | None = None,
) -> tuple[PairingCode, AllowEntry]:
    """Approve the live code ``text``: allow its sender on its platform (in ``folder`` only, when given) and tell it.

    Raises :class:`PairingError` for a malformed, unknown, expired or decided code, an unregistered ``folder``, or
    while approvals are locked after too many wrong codes; nothing is changed then (but the failure is counted).
    ``write`` stores the sender's notice (the loop's outbox); without it the notice is stored at once."""
    config = config or AuthConfig()
    if folder and store.get_group(folder) is None:
        raise PairingError(f"no group {folder!r}")
    match = _find(store, text, now, config)
    try:
        code, entry = store.decide_pairing(match.id, "approved", by=by, now=now, folder=folder)
    except NotFound as exc:
        raise PairingError(str(exc)) from exc
    where = f"group {folder}" if folder else "every group"
    notice = NewMessage(
        chat_jid=code.chat_jid,
        id=derived_id("pair-", "approved", code.id),
        content="You're paired: you can talk to me now.",
        direction="out",
        origin=GATEWAY_ORIGIN,
        delivered=read_from_store(code.chat_jid),
    )
    if write is not None:
        write(notice)
    else:
        store.put_message(notice, now=now)
    logger.info("pairing %d approved by %s: %s on %s in %s", code.id, by, code.sender, code.platform, where)
    assert entry is not None
    return code, entry


def deny(store: Store, text: str, *, by: str, now: dt.datetime, config: AuthConfig | None = None) -> PairingCode:
    """Deny the live code ``text``, or the pending request whose id ``text`` is (as ``gated pairing list`` shows).
    Raises :class:`PairingError` as :func:`approve` does."""
    config = config or AuthConfig()
    code_id = (
        int(text) if text.strip().isdigit() and len(text.strip()) < CODE_LENGTH else _find(store, text, now, config).id
    )
    try:
        code, _ = store.decide_pairing(code_id, "denied", by=by, now=now)
    except NotFound as exc:
        raise PairingError(str(exc)) from exc
    logger.info("pairing %d denied by %s: %s on %s", code.id, by, code.sender, code.platform)
    return code


def _find(store: Store, text: str, now: dt.datetime, config: AuthConfig) -> PairingCode:
    code = normalise_code(text)
    failures, since = _failures(store, now)
    if failures >= config.pairing_max_failures:
        raise PairingError(f"too many wrong pairing codes; approvals are locked until {since + LOCKOUT:%H:%M} UTC")
    found = None
    for candidate in store.pairing_codes(live_at=now, limit=10_000):
        # every live code is compared, whatever matched, so the time taken does not tell which one did
        if hmac.compare_digest(code_hash(candidate.salt, code), candidate.code_hash) and found is None:
            found = candidate
    if found is None:
        store.set_state(FAILURES_KEY, f"{failures + 1} {(since if failures else now).isoformat()}")
        raise PairingError("no live pairing code matches (mistyped, expired or already decided)")
    if failures:
        store.set_state(FAILURES_KEY, f"0 {now.isoformat()}")
    return found


def _failures(store: Store, now: dt.datetime) -> tuple[int, dt.datetime]:
    """Wrong codes in a row and when the streak began; a streak older than :data:`LOCKOUT` counts as none."""
    raw = store.get_state(FAILURES_KEY)
    if not raw:
        return 0, now
    count, _, since_text = raw.partition(" ")
    since = dt.datetime.fromisoformat(since_text)
    if now - since >= LOCKOUT:
        return 0, now
    return int(count), since
