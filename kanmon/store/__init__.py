"""The store (SPEC §3): SQLAlchemy Core tables and the Store API, the only code that speaks SQL."""

from kanmon.store.actions import ActionApplied, ActionEffect, RunAction, TaskCancel, refusal_line
from kanmon.store.apikeys import ApiKey
from kanmon.store.approvals import RecordedApproval
from kanmon.store.auth import AllowEntry, Issued, PairingCode, PairingRequest, RefusedSender
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
from kanmon.store.lanes import LaneHead
from kanmon.store.migrate import (
    current_revision,
    downgrade,
    head_revision,
    schema_drift,
    upgrade,
    upgrade_if_behind,
)
from kanmon.store.operator import RunLog
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
from kanmon.store.resets import SessionChat, SessionReset
from kanmon.store.runs import RunBegin, RunDraft, RunEnd, RunEnded, RunStart
from kanmon.store.status import WaitingChat, WaitingRow
from kanmon.store.store import Store
from kanmon.store.tasks import Fired, FirePlan, NewTask, Task, TaskStatus
from kanmon.store.text import storable
from kanmon.store.usage import UsageEntry, UsageSum
from kanmon.store.webchat import WebToken
from kanmon.store.work import ChatLag, Dispatch

__all__ = [
    "SUPPORTED_URLS",
    "ActionApplied",
    "ActionEffect",
    "AllowEntry",
    "ApiKey",
    "Channel",
    "Chat",
    "ChatLag",
    "Conflict",
    "Dispatch",
    "FirePlan",
    "Fired",
    "Group",
    "InvalidValue",
    "Issued",
    "LaneHead",
    "Message",
    "NewMessage",
    "NewTask",
    "NoStore",
    "NotFound",
    "PairingCode",
    "PairingRequest",
    "PrefixTaken",
    "PutResult",
    "RecordedApproval",
    "RefusedSender",
    "Route",
    "Run",
    "RunAction",
    "RunBegin",
    "RunDraft",
    "RunEnd",
    "RunEnded",
    "RunLog",
    "RunStart",
    "RunStatus",
    "Session",
    "SessionChat",
    "SessionReset",
    "Store",
    "StoreError",
    "StoreFenced",
    "StoreUnavailable",
    "SystemMessage",
    "Task",
    "TaskCancel",
    "TaskStatus",
    "UnusableStore",
    "UsageEntry",
    "UsageSum",
    "WaitingChat",
    "WaitingRow",
    "WebToken",
    "check_schema",
    "check_sqlite_file",
    "check_store_location",
    "current_revision",
    "describe_url",
    "downgrade",
    "head_revision",
    "is_url",
    "make_engine",
    "refusal_line",
    "schema_drift",
    "sqlite_url",
    "storable",
    "upgrade",
    "upgrade_if_behind",
    "url_problem",
]
