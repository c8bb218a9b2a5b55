"""The store (SPEC §3): SQLAlchemy Core tables and the Store API, the only code that speaks SQL."""

from kanmon.store.engine import describe_url, make_engine, sqlite_url
from kanmon.store.errors import Conflict, InvalidValue, NotFound, StoreError, StoreFenced, StoreUnavailable
from kanmon.store.migrate import current_revision, head_revision, schema_drift, upgrade
from kanmon.store.records import (
    Channel,
    Chat,
    Group,
    Message,
    NewMessage,
    PutResult,
    Route,
    Run,
    RunStatus,
    Session,
    SystemMessage,
)
from kanmon.store.store import Store
from kanmon.store.work import BatchEnd, ChatLag, Dispatch, LaneHead

__all__ = [
    "BatchEnd",
    "Channel",
    "Chat",
    "ChatLag",
    "Conflict",
    "Dispatch",
    "Group",
    "InvalidValue",
    "LaneHead",
    "Message",
    "NewMessage",
    "NotFound",
    "PutResult",
    "Route",
    "Run",
    "RunStatus",
    "Session",
    "Store",
    "StoreError",
    "StoreFenced",
    "StoreUnavailable",
    "SystemMessage",
    "current_revision",
    "describe_url",
    "head_revision",
    "make_engine",
    "schema_drift",
    "sqlite_url",
    "upgrade",
]
