"""The web chat's tokens and its topics' names (SPEC §11; issue 18 item 3).

A group may have several web tokens, one per link handed out, each with a label and revocable on its own: a fresh
link for a new device or person never logs anyone else out. Only each token's sha256 is stored (the token is shown
once, by ``gated group web-token``); the web chat compares a request's token with every hash of its folder in constant
time (:mod:`kanmon.web.webchat_auth`).

A topic's id (``t-…``, or ``""``) is what messages, sessions and the stream use, forever; its name is what people
read, stored beside it in ``topic_names`` and changed freely.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import delete, select

from kanmon.store.base import StoreBase, from_row, from_rows
from kanmon.store.errors import NotFound
from kanmon.store.records import Group
from kanmon.store.tables import registered_groups, topic_names, web_tokens

__all__ = ["WebChatStore", "WebToken"]


@dataclass(frozen=True, kw_only=True)
class WebToken:
    """One web token of a group: its id (to revoke it by), the sha256 (hex) of the token, its label."""

    id: int
    group_folder: str
    token_hash: str
    label: str
    created_at: dt.datetime


class WebChatStore(StoreBase):
    """``web_tokens`` and ``topic_names``."""

    # ------------------------------------------------------------------------------------------------ tokens
    def add_web_token(self, folder: str, token_hash: str, *, label: str = "") -> WebToken:
        """Give ``folder``'s web chat one more token (its others keep working); NotFound if no such group."""
        added = self._put_web_token(folder, token_hash, label, replace="none")
        assert added is not None  # a hash was given
        return added

    def set_group_web_token(self, folder: str, token_hash: str | None, *, label: str = "") -> WebToken | None:
        """Make ``token_hash`` ``folder``'s only web token (every other is revoked, in the same transaction); with
        None, revoke them all. NotFound if no such group."""
        return self._put_web_token(folder, token_hash, label, replace="all")

    def renew_web_token(self, folder: str, token_hash: str, *, label: str) -> WebToken:
        """Make ``token_hash`` ``folder``'s token labelled ``label``: the tokens with that label are revoked in the
        same transaction, every other keeps working (``gated demo``'s link, new at each start, leaves the tokens
        an operator added alone). NotFound if no such group."""
        renewed = self._put_web_token(folder, token_hash, label, replace="label")
        assert renewed is not None  # a hash was given
        return renewed

    def _put_web_token(
        self, folder: str, token_hash: str | None, label: str, *, replace: Literal["none", "label", "all"]
    ) -> WebToken | None:
        with self._write() as conn:
            if conn.execute(select(registered_groups.c.folder).where(registered_groups.c.folder == folder)).first():
                if replace != "none":
                    revoked = delete(web_tokens).where(web_tokens.c.group_folder == folder)
                    conn.execute(revoked.where(web_tokens.c.label == label) if replace == "label" else revoked)
                if token_hash is None:
                    return None
                values = {
                    "group_folder": folder,
                    "token_hash": token_hash,
                    "label": label,
                    "created_at": self.clock.now(),
                }
                inserted = conn.execute(web_tokens.insert().values(**values).returning(*web_tokens.c))
                return from_rows(WebToken, inserted)[0]
        raise NotFound(f"no group {folder!r}")

    def list_web_tokens(self, folder: str | None = None) -> list[WebToken]:
        """The web tokens of ``folder`` (of every group when None), oldest first: their hashes, never a token."""
        query = select(web_tokens).order_by(web_tokens.c.id)
        if folder is not None:
            query = query.where(web_tokens.c.group_folder == folder)
        with self._read() as conn:
            return from_rows(WebToken, conn.execute(query))

    def web_token_hashes(self, folder: str) -> list[str]:
        """The hashes a request for ``folder``'s web chat is compared with (none: no such group, or no token)."""
        query = select(web_tokens.c.token_hash).where(web_tokens.c.group_folder == folder).order_by(web_tokens.c.id)
        with self._read() as conn:
            return [str(value) for value in conn.execute(query).scalars()]

    def group_and_web_token_hashes(self, folder: str) -> tuple[Group | None, list[str]]:
        """The group ``folder`` (None if absent) and its web token hashes, in one read: what a request is checked by."""
        query = select(web_tokens.c.token_hash).where(web_tokens.c.group_folder == folder).order_by(web_tokens.c.id)
        with self._read() as conn:
            row = conn.execute(select(registered_groups).where(registered_groups.c.folder == folder)).first()
            hashes = [str(value) for value in conn.execute(query).scalars()]
        return (None if row is None else from_row(Group, row)), hashes

    def revoke_web_token(self, folder: str, token_id: int) -> bool:
        """Revoke ``folder``'s token ``token_id`` (from its next request on); True if it was one of ``folder``'s."""
        where = (web_tokens.c.group_folder == folder, web_tokens.c.id == token_id)
        with self._write() as conn:
            return bool(conn.execute(delete(web_tokens).where(*where)).rowcount)

    # ------------------------------------------------------------------------------------------------ topic names
    def name_topic(self, chat_jid: str, topic: str, name: str, *, now: dt.datetime | None = None) -> None:
        """Call ``chat_jid``'s ``topic`` ``name`` from now on ("": forget its name, so it is shown by its id)."""
        with self._write() as conn:
            if not name:
                conn.execute(
                    delete(topic_names).where(topic_names.c.chat_jid == chat_jid, topic_names.c.topic == topic)
                )
                return
            values = {"chat_jid": chat_jid, "topic": topic, "name": name, "named_at": self._stamp(now)}
            conn.execute(self._upsert(topic_names, values, ["chat_jid", "topic"]))

    def topic_names(self, chat_jid: str) -> dict[str, tuple[str, dt.datetime]]:
        """``{topic: (name, when it was named)}`` of ``chat_jid``'s named topics."""
        query = select(topic_names.c.topic, topic_names.c.name, topic_names.c.named_at).where(
            topic_names.c.chat_jid == chat_jid
        )
        with self._read() as conn:
            return {row.topic: (row.name, row.named_at) for row in conn.execute(query)}
