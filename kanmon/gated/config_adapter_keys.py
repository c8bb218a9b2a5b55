"""The configuration keys of the channel adapters shipped with kanmon (``gated adapter telegram|matrix``).

Each adapter is a process of its own that reads the same file and ``KANMON_*`` variables as gated; its keys live in a
section named after it. :mod:`kanmon.gated.config_keys` puts them in the one key table.
"""

from __future__ import annotations

from kanmon.gated.config_kinds import (
    FLOAT,
    NAMES,
    SIZE,
    STR,
    Check,
    Key,
    above,
    at_least,
    is_listen,
    key,
    pattern,
)

__all__ = ["ADAPTER_KEYS"]

_POSITIVE = above(0)
_NON_NEGATIVE = at_least(0, "a number")
_HTTP_URL = pattern("an http:// or https:// URL, or empty", r"(https?://\S+)?")
_LISTEN = Check("host:port like 127.0.0.1:8090", is_listen)


ADAPTER_KEYS: tuple[Key, ...] = (
    key(
        "telegram.bot_token",
        STR,
        "",
        "The bot's token from @BotFather, for `gated adapter telegram`.",
        secret=True,
    ),
    key(
        "telegram.name",
        STR,
        "telegram",
        "The Telegram adapter's name at gated (the channel of its chats).",
        check=pattern("a name of lowercase letters, digits, '_' and '-'", r"[a-z0-9][a-z0-9_-]{0,62}"),
    ),
    key(
        "telegram.listen",
        STR,
        "127.0.0.1:8081",
        "Address of the Telegram adapter's /send endpoint.",
        check=Check("host:port like 127.0.0.1:8081", is_listen),
    ),
    key(
        "telegram.url",
        STR,
        "",
        "URL gated reaches the Telegram adapter at; empty = http://<telegram.listen>.",
        check=pattern("an http(s):// URL, or empty", r"(https?://[^\s/?#]+(/[^\s?#]*)?)?"),
    ),
    key(
        "telegram.gated_url",
        STR,
        "",
        "URL of gated for the Telegram adapter (--gated); empty = http://<http.listen>.",
        check=pattern("an http(s):// URL, or empty", r"(https?://[^\s/?#]+(/[^\s?#]*)?)?"),
    ),
    key(
        "telegram.api_url",
        STR,
        "https://api.telegram.org",
        "The Bot API server (a local telegram-bot-api server, say).",
        check=pattern("an http(s):// URL", r"https?://[^\s/?#]+(/[^\s?#]*)?"),
    ),
    key(
        "telegram.state_dir",
        STR,
        "",
        "Where the Telegram adapter keeps its update offset and sent journal; empty = DATA/adapters/<name>.",
    ),
    key(
        "telegram.poll_timeout",
        FLOAT,
        30.0,
        "Seconds one getUpdates long poll may wait for updates.",
        check=_POSITIVE,
    ),
    key(
        "telegram.typing_limit",
        FLOAT,
        120.0,
        "Longest 'typing…' shown while a message waits for its answer, in seconds; 0 = never.",
        check=_NON_NEGATIVE,
    ),
    # the Matrix adapter (`gated adapter matrix`, kanmon.adapters.matrix): a process of its own, same file and variables
    key("matrix.homeserver", STR, "", "The bot's homeserver URL, e.g. https://matrix.example.org.", check=_HTTP_URL),
    key(
        "matrix.user_id",
        STR,
        "",
        "The bot's Matrix user id, e.g. @kanmon:example.org.",
        check=pattern("a Matrix user id like @bot:example.org, or empty", r"(@[^:\s]+:\S+)?"),
    ),
    key("matrix.access_token", STR, "", "The bot's access token (or set matrix.password).", secret=True),
    key("matrix.password", STR, "", "The bot's password, used to log in once when there is no token.", secret=True),
    key(
        "matrix.allowed_inviters",
        NAMES,
        (),
        "Users whose room invites the bot accepts (globs like @*:example.org); others are declined.",
        check=Check("user ids or globs like @alice:example.org", lambda names: all(n.startswith("@") for n in names)),
    ),
    key("matrix.listen", STR, "127.0.0.1:8090", "Where the Matrix adapter serves /send for gated.", check=_LISTEN),
    key(
        "matrix.url", STR, "", "The adapter's URL as gated reaches it; empty = http://<matrix.listen>.", check=_HTTP_URL
    ),
    key(
        "matrix.gated_url",
        STR,
        "",
        "gated's URL for the adapter; empty = http://<http.listen> (--gated).",
        check=_HTTP_URL,
    ),
    key(
        "matrix.max_message_bytes",
        SIZE,
        32000,
        "Largest text of one Matrix message; longer replies are split (JSON-escaped UTF-8).",
        check=at_least(1024, "a size like 32k, at least 1k"),
    ),
)
