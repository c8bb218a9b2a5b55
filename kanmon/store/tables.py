"""The schema (SPEC §3) as SQLAlchemy Core tables on one MetaData; Alembic migrations must produce exactly this."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    UniqueConstraint,
)

from kanmon.store.auth_tables import pairing_codes, refused_senders, sender_allow
from kanmon.store.columns import SeqType, UTCDateTime, metadata
from kanmon.store.columns import empty_text as _empty
from kanmon.store.columns import false as _false

__all__ = [
    "api_key_groups",
    "api_keys",
    "channels",
    "chats",
    "messages",
    "metadata",
    "pairing_codes",
    "refused_senders",
    "registered_groups",
    "router_state",
    "routes",
    "run_actions",
    "run_logs",
    "sender_allow",
    "session_log",
    "session_resets",
    "sessions",
    "system_messages",
    "tasks",
    "topic_names",
    "usage",
    "web_tokens",
]

messages = Table(
    "messages",
    metadata,
    Column(
        "seq", SeqType, primary_key=True, autoincrement=True, doc="the one cursor: rows become visible in seq order"
    ),
    Column("id", Text, nullable=False, doc="the platform's message id (generated when absent)"),
    Column("chat_jid", Text, nullable=False),
    Column("direction", Text, nullable=False, doc="'in' (from a chat) or 'out' (written by the gateway)"),
    Column("sender", Text, nullable=False, server_default=_empty()),
    Column("sender_name", Text, nullable=False, server_default=_empty()),
    Column("content", Text, nullable=False, server_default=_empty()),
    Column("timestamp", UTCDateTime, nullable=False, doc="platform send time; never used to decide what is new"),
    Column("received_at", UTCDateTime, nullable=False),
    Column("verb", Text, nullable=False, server_default="message"),
    Column("topic", Text, nullable=False, server_default=_empty()),
    Column("reply_to_id", Text),
    Column("reply_to_text", Text),
    Column("reply_to_sender", Text),
    # none_as_null: a message without attachments holds SQL NULL, not JSON null, so reading it parses nothing
    Column("attachments", JSON(none_as_null=True)),
    Column("forwarded_from", Text),
    Column(
        "is_bot_message",
        Boolean,
        nullable=False,
        server_default=_false(),
        doc="true on every outbound row (kanmon speaking)",
    ),
    Column("origin", Text, nullable=False, server_default=_empty(), doc="adapter:<name> | web | gateway | cli | ..."),
    Column("run_id", Text, doc="outbound: the run that produced this reply"),
    Column("output_index", Integer, doc="outbound: position of the reply in its run's output"),
    Column("delivery_status", Text, doc="outbound: pending | sent | failed"),
    Column("delivery_attempts", Integer, nullable=False, server_default="0"),
    Column("deliver_after", UTCDateTime, doc="outbound: earliest next delivery attempt (backoff)"),
    Column("delivery_error", Text),
    Column("platform_message_id", Text),
    Column("status", Text, doc="inbound: new | done | dead | skipped"),
    # The loop's dispatch decision for an inbound row that waits for an agent (SPEC §5.3): recorded with last_seq,
    # so a run reads where each row goes instead of routing it a second time (sticky and routes may have changed).
    Column("routed_folder", Text, doc="inbound: the group folder whose agent takes this row"),
    Column("routed_topic", Text, doc="inbound: the session topic it runs in"),
    Column("routed_content", Text, doc="inbound: the text the agent sees (a leading @name or #topic stripped)"),
    UniqueConstraint("chat_jid", "id"),
    UniqueConstraint("run_id", "output_index"),
    CheckConstraint("direction IN ('in', 'out')", name="direction"),
    CheckConstraint("status IS NULL OR status IN ('new', 'done', 'dead', 'skipped')", name="status"),
    CheckConstraint(
        "delivery_status IS NULL OR delivery_status IN ('pending', 'sent', 'failed')", name="delivery_status"
    ),
    Index(None, "chat_jid", "seq"),
    Index(None, "delivery_status", "seq"),
    # What waits for an agent: few rows among millions, found without scanning the log.
    Index(None, "status", "routed_folder", "seq"),
)

chats = Table(
    "chats",
    metadata,
    Column("jid", Text, primary_key=True),
    Column("channel", Text, doc="the adapter of record"),
    Column("name", Text),
    Column("is_group", Boolean, nullable=False, server_default=_false()),
    Column("sticky_group", Text),
    Column("sticky_topic", Text),
    Column("agent_cursor", SeqType, nullable=False, server_default="0", doc="last seq the agent has consumed"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("retry_at", UTCDateTime),
)

registered_groups = Table(
    "registered_groups",
    metadata,
    Column("folder", Text, primary_key=True),
    Column("name", Text, nullable=False, server_default=_empty()),
    Column("added_at", UTCDateTime, nullable=False),
    Column("parent", Text, ForeignKey("registered_groups.folder", ondelete="SET NULL")),
    Column("container_config", JSON, doc="runtime, image, command, env, timeouts, limits, network, mounts"),
    Column("impulse_config", Text),
)

routes = Table(
    "routes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("seq", Integer, nullable=False, server_default="0"),
    Column("match", Text, nullable=False, server_default=_empty()),
    Column("target", Text, nullable=False),
    Column("impulse_config", Text),
    Index(None, "seq"),
    sqlite_autoincrement=True,  # an id is never given twice (migration 0012)
)

router_state = Table(
    "router_state",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("group_folder", Text, ForeignKey("registered_groups.folder", ondelete="CASCADE"), primary_key=True),
    Column("topic", Text, primary_key=True, server_default=_empty()),
    Column("session_id", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# A session reset (issue 16): decided by a policy or /new, kept until the next prompt has said so and the memory
# flush turn of the old session (flush_session_id) has run, or was started once (flush_started_at: never twice).
session_resets = Table(
    "session_resets",
    metadata,
    Column("group_folder", Text, ForeignKey("registered_groups.folder", ondelete="CASCADE"), primary_key=True),
    Column("topic", Text, primary_key=True, server_default=_empty()),
    Column("chat_jid", Text, nullable=False, doc="the chat the reset was decided for: its notice, its lane"),
    Column("reason", Text, nullable=False, doc="idle, daily or new"),
    Column("detail", Text, nullable=False, doc="'idle for 24h', 'daily reset at 04:00 UTC', '/new'"),
    Column("decided_at", UTCDateTime, nullable=False),
    Column("announced", Boolean, nullable=False, server_default=_false(), doc="a run's prompt has said so"),
    Column("flush_session_id", Text, doc="the old session whose memory flush turn is still to run"),
    Column("flush_started_at", UTCDateTime),
)

session_log = Table(
    "session_log",
    metadata,
    Column("id", Text, primary_key=True, doc="the run id"),
    Column("instance", Text, nullable=False, server_default=_empty(), doc="the gated instance that owns the run"),
    Column("group_folder", Text, nullable=False),
    Column("topic", Text, nullable=False, server_default=_empty()),
    Column("chat_jid", Text, nullable=False),
    Column("session_id", Text),
    Column("runtime", Text, nullable=False),
    Column("container", Text),
    Column("status", Text, nullable=False),
    Column("first_seq", SeqType),
    Column("last_seq", SeqType),
    Column("message_count", Integer, nullable=False, server_default="0"),
    Column("output_count", Integer, nullable=False, server_default="0"),
    Column("started_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),
    Column("error", Text),
    CheckConstraint(
        "status IN ('starting', 'running', 'ok', 'error', 'timeout', 'stopped', 'reclaimed')", name="status"
    ),
    Index(None, "status"),
    Index(None, "group_folder", "started_at"),
)

system_messages = Table(
    "system_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("group_folder", Text, ForeignKey("registered_groups.folder", ondelete="CASCADE"), nullable=False),
    Column("origin", Text, nullable=False),
    Column("event", Text, nullable=False),
    Column("body", Text, nullable=False, server_default=_empty()),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "group_folder", "id"),
)

channels = Table(
    "channels",
    metadata,
    Column("name", Text, primary_key=True),
    Column("url", Text, nullable=False),
    Column("token_hash", Text, nullable=False, doc="sha256 of the adapter token, never the token"),
    Column("jid_prefixes", JSON, nullable=False),
    Column("capabilities", JSON, nullable=False),
    Column("registered_at", UTCDateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Text, primary_key=True, doc="the key's public id, which the key itself starts with"),
    Column("key_hash", Text, nullable=False, doc="sha256 of the whole key, never the key"),
    Column("name", Text, nullable=False, server_default=_empty()),
    Column("created_at", UTCDateTime, nullable=False),
)

api_key_groups = Table(
    "api_key_groups",
    metadata,
    Column("key_id", Text, ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True),
    Column("group_folder", Text, ForeignKey("registered_groups.folder", ondelete="CASCADE"), primary_key=True),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "group_folder",
        Text,
        nullable=False,
        doc="the group the task belongs to (no foreign key: a task whose "
        "group is removed fails with a reason instead of vanishing)",
    ),
    Column("chat_jid", Text, nullable=False, doc="where each occurrence is put as an inbound message"),
    Column("topic", Text, nullable=False, server_default=_empty()),
    Column("prompt", Text, nullable=False),
    Column("kind", Text, nullable=False, doc="cron | every | at"),
    Column("expression", Text, nullable=False, doc="cron: the expression; every: seconds; at: ISO 8601 UTC"),
    Column("timezone", Text, nullable=False, server_default="UTC", doc="IANA zone cron times are read in"),
    Column("missed", Text, nullable=False, server_default="latest", doc="latest | skip | all: after downtime"),
    Column("status", Text, nullable=False, server_default="active"),
    Column("reason", Text, doc="why the task is done or failed"),
    Column("next_fire_at", UTCDateTime, doc="the next occurrence (null once done or failed)"),
    Column("last_fire_at", UTCDateTime, doc="the newest occurrence stored"),
    Column("fire_count", Integer, nullable=False, server_default="0", doc="occurrences stored"),
    Column("created_by", Text, nullable=False, doc="'operator', or the run id of the agent that made it"),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("kind IN ('cron', 'every', 'at')", name="kind"),
    CheckConstraint("missed IN ('latest', 'skip', 'all')", name="missed"),
    CheckConstraint("status IN ('active', 'paused', 'done', 'failed')", name="status"),
    # the scheduler's one question: which active tasks are due
    Index(None, "status", "next_fire_at"),
    Index(None, "group_folder"),
    sqlite_autoincrement=True,  # an id is never given twice (migration 0012)
)

run_actions = Table(
    "run_actions",
    metadata,
    Column("run_id", Text, primary_key=True, doc="the run whose output asked for the action"),
    Column("output_index", Integer, primary_key=True, doc="the output block, numbered per run from 0"),
    Column("action_index", Integer, primary_key=True, doc="the action's place in the block's actions list"),
    Column("group_folder", Text, nullable=False, doc="the agent's folder"),
    Column("kind", Text, nullable=False, doc="send | schedule | cancel_task | list_tasks | invalid"),
    Column("outcome", Text, nullable=False, doc="done | refused"),
    Column("detail", Text, nullable=False, server_default=_empty(), doc="what was done, or why it was refused"),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("outcome IN ('done', 'refused')", name="outcome"),
)

usage = Table(
    "usage",
    metadata,
    Column("run_id", Text, primary_key=True),
    Column("output_index", Integer, primary_key=True, doc="the output block that reported it: a replay adds nothing"),
    Column("group_folder", Text, nullable=False, doc="no foreign key: spend outlives a removed group"),
    Column("topic", Text, nullable=False, server_default=_empty()),
    Column("chat_jid", Text, nullable=False),
    Column("session_id", Text, doc="the agent session the output belonged to (null: none known)"),
    Column("day", Text, nullable=False, doc="YYYY-MM-DD in the group's time zone when it was recorded"),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("input_tokens", BigInteger, nullable=False, server_default="0"),
    Column("output_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cache_read_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cache_write_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cost_usd", Float, nullable=False, server_default="0", doc="US dollars"),
    # a group's spend of a day (the budget check before every run of a group with a budget) and gated usage
    Index(None, "group_folder", "day"),
    Index(None, "day"),
)

run_logs = Table(
    "run_logs",
    metadata,
    Column("run_id", Text, primary_key=True, doc="the session_log row; written once, when the run ends"),
    Column("stderr", Text, nullable=False, server_default=_empty(), doc="the last 64 KiB of its stderr, redacted"),
    Column("stdout", Text, nullable=False, server_default=_empty(), doc="the last 64 KiB of its stdout outside blocks"),
    Column("recorded_at", UTCDateTime, nullable=False),
)

web_tokens = Table(
    "web_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True, doc="what `gated group web-token --revoke` names"),
    Column("group_folder", Text, ForeignKey("registered_groups.folder", ondelete="CASCADE"), nullable=False),
    Column("token_hash", Text, nullable=False, doc="sha256 of the token, never the token"),
    Column("label", Text, nullable=False, server_default=_empty(), doc="who or what it was given to"),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "group_folder"),
    sqlite_autoincrement=True,  # an id is never given twice (migration 0012)
)

topic_names = Table(
    "topic_names",
    metadata,
    Column("chat_jid", Text, primary_key=True, doc="no foreign key: a chat's topics live in its messages"),
    Column("topic", Text, primary_key=True),
    Column("name", Text, nullable=False, doc="what people call the topic; its id never changes"),
    Column("named_at", UTCDateTime, nullable=False),
)
