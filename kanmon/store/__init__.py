"""The store (SPEC §3): SQLAlchemy Core tables and the Store API, the only code that speaks SQL."""

from kanmon.store.apikeys import ApiKey
from kanmon.store.approvals import RecordedApproval
from kanmon.store.engine import SUPPORTED_URLS, describe_url, is_url, make_engine, sqlite_url, url_problem
from kanmon.store.errors import (
    Conflict,
    InvalidValue,
    NoStore,
    NotFound,
    PrefixTaken,
    StoreError,
    StoreFenced,
    StoreUnavailable,
    UnusableStore,
)
from kanmon.store.identity import check_schema, check_sqlite_file, check_store_location
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
    "SUPPORTED_URLS",
    "ApiKey",
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
    "NoStore",
    "NotFound",
    "PrefixTaken",
    "PutResult",
    "RecordedApproval",
    "Route",
    "Run",
    "RunStatus",
    "Session",
    "Store",
    "StoreError",
    "StoreFenced",
    "StoreUnavailable",
    "SystemMessage",
    "UnusableStore",
    "check_schema",
    "check_sqlite_file",
    "check_store_location",
    "current_revision",
    "describe_url",
    "head_revision",
    "is_url",
    "make_engine",
    "schema_drift",
    "sqlite_url",
    "upgrade",
    "url_problem",
]
