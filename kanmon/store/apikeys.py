"""API keys of the OpenAI-compatible API: which groups a key may use, and the hash it is checked against.

The key itself is never stored: only its sha256, under the key's public id (the part of the key before its secret),
so a request is checked by one lookup and one constant-time comparison (:mod:`kanmon.web.openai_auth`). The groups
a key may use live in ``api_key_groups``, with foreign keys both ways: removing a group takes it off every key
(a group removed and added again is not given back to old keys), removing a key takes its grants with it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, delete, select

from kanmon.folders import validate_folder
from kanmon.store.base import StoreBase
from kanmon.store.errors import Conflict, NotFound
from kanmon.store.tables import api_key_groups, api_keys, registered_groups

__all__ = ["ApiKey", "ApiKeyStore"]


@dataclass(frozen=True, kw_only=True)
class ApiKey:
    """A stored API key: its public id, the sha256 (hex) of the whole key, and the folders it may use."""

    id: str
    key_hash: str
    name: str
    created_at: dt.datetime
    groups: tuple[str, ...]


class ApiKeyStore(StoreBase):
    """``api_keys`` and ``api_key_groups``."""

    def add_api_key(
        self, key_id: str, key_hash: str, groups: Sequence[str], *, name: str = "", now: dt.datetime | None = None
    ) -> ApiKey:
        """Store a new key allowed to use ``groups`` (at least one, each registered).

        Raises :class:`NotFound` for a group that is not registered, :class:`Conflict` when ``key_id`` is taken,
        ``InvalidInput`` for a malformed folder or an empty ``groups``; nothing is written then.
        """
        folders = sorted({validate_folder(folder) for folder in groups})
        if not folders:
            raise NotFound("an API key needs at least one group (--group FOLDER)")
        with self._write() as conn:
            known = set(
                conn.execute(
                    select(registered_groups.c.folder).where(registered_groups.c.folder.in_(folders))
                ).scalars()
            )
            missing = [folder for folder in folders if folder not in known]
            if missing:
                raise NotFound(f"no group {missing[0]!r}: add it with `gated group add {missing[0]}`")
            if conn.execute(select(api_keys.c.id).where(api_keys.c.id == key_id)).first() is not None:
                raise Conflict(f"API key id {key_id!r} is taken")
            created = self._stamp(now)
            conn.execute(api_keys.insert().values(id=key_id, key_hash=key_hash, name=name, created_at=created))
            conn.execute(api_key_groups.insert(), [{"key_id": key_id, "group_folder": folder} for folder in folders])
        return ApiKey(id=key_id, key_hash=key_hash, name=name, created_at=created, groups=tuple(folders))

    def get_api_key(self, key_id: str) -> ApiKey | None:
        """The key with public id ``key_id``, if any."""
        with self._read() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
            if row is None:
                return None
            return _key(row, _groups(conn, [key_id]).get(key_id, ()))

    def list_api_keys(self) -> list[ApiKey]:
        """Every key, oldest first."""
        with self._read() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)).all()
            groups = _groups(conn, [row.id for row in rows])
            return [_key(row, groups.get(row.id, ())) for row in rows]

    def remove_api_key(self, key_id: str) -> bool:
        """Delete the key ``key_id`` and its grants; True if it existed."""
        with self._write() as conn:
            conn.execute(delete(api_key_groups).where(api_key_groups.c.key_id == key_id))
            return bool(conn.execute(delete(api_keys).where(api_keys.c.id == key_id)).rowcount)


def _groups(conn: Connection, key_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
    if not key_ids:
        return {}
    query = (
        select(api_key_groups.c.key_id, api_key_groups.c.group_folder)
        .where(api_key_groups.c.key_id.in_(list(key_ids)))
        .order_by(api_key_groups.c.group_folder)
    )
    found: dict[str, list[str]] = {}
    for key_id, folder in conn.execute(query):
        found.setdefault(key_id, []).append(folder)
    return {key_id: tuple(folders) for key_id, folders in found.items()}


def _key(row: Row[Any], groups: tuple[str, ...]) -> ApiKey:
    mapping = row._mapping
    return ApiKey(
        id=mapping["id"],
        key_hash=mapping["key_hash"],
        name=mapping["name"],
        created_at=mapping["created_at"],
        groups=groups,
    )
