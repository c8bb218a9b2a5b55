"""A local Telegram Bot API server: the methods the adapter uses, as https://core.telegram.org/bots/api describes them.

Telegram's servers are out of reach here, so the adapter (python-telegram-bot, pointed here by ``base_url``) talks
to this. It answers like the Bot API: ``{"ok": true, "result": …}``, or ``{"ok": false, "error_code",
"description", "parameters"}`` with the HTTP status of the error; it takes parameters as a query string,
``application/x-www-form-urlencoded``, ``application/json`` or ``multipart/form-data``, with objects JSON-encoded.

* ``getMe``, ``deleteWebhook``, ``getFile`` and the file download ``/file/bot<token>/<file_path>``.
* ``getUpdates``: long polling (``timeout``), ``offset`` confirms every update before it (they are forgotten),
  ``limit``, ``allowed_updates`` (``message_reaction`` only when asked for by name).
* ``sendMessage``: ``parse_mode=HTML`` is parsed as Telegram does: only its tags (b, strong, i, em, u, ins, s,
  strike, del, span class="tg-spoiler", tg-spoiler, a href, code, pre, blockquote, tg-emoji), only the entities
  ``&lt; &gt; &amp; &quot;`` and numeric ones, tags closed in order; anything else is ``400 Bad Request: can't parse
  entities``. The text after parsing must be 1-4096 UTF-16 code units. ``message_thread_id`` must name a topic of
  a forum chat; ``reply_parameters.message_id`` a message of the chat unless ``allow_sending_without_reply``.
* ``sendPhoto``, ``sendDocument`` (a file_id, a URL or an upload), ``sendChatAction``. An upload's parameter reads
  ``{"upload": <file name>}``; what was uploaded (name, Content-Type, bytes) is in the call's ``uploads``.
* Uploads over the Bot API's limits (50 MB, a photo 10 MB) are ``413 Request Entity Too Large``.
* Flood control on demand: :meth:`FakeBotApi.flood` makes the next calls of a method answer ``429 Too Many
  Requests: retry after N`` with ``parameters.retry_after``; :attr:`refuse_entities` makes Telegram refuse the
  entities of HTML texts containing a marker, as it does for entities it cannot take.

It runs with uvicorn in a thread of its own; tests add updates and read what was sent through thread-safe methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kanmon.serving import EmbeddedServer, tcp_listener

TOKEN = "123456:TEST-token-for-the-fake-bot-api"
BOT = {
    "id": 999,
    "is_bot": True,
    "first_name": "Kanmon",
    "username": "kanmon_test_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
LIMIT = 4096
UPLOAD_LIMIT = 50_000_000  # bytes a bot may upload (Bot API, "Sending files": 50 MB)
PHOTO_UPLOAD_LIMIT = 10_000_000  # bytes of an uploaded photo (10 MB)
_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code", "pre"}
_TAGS |= {"blockquote", "tg-emoji"}
_JSON_FIELDS = {
    "reply_parameters",
    "allowed_updates",
    "reply_markup",
    "entities",
    "caption_entities",
    "link_preview_options",
}
_INT_FIELDS = {"offset", "limit", "timeout", "message_thread_id", "chat_id"}


class ApiError(Exception):
    def __init__(self, code: int, description: str, **parameters: Any) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


@dataclass(frozen=True)
class Upload:
    """A file posted with ``multipart/form-data``: its file name, its part's Content-Type, and its bytes."""

    filename: str
    content_type: str
    data: bytes


@dataclass
class Call:
    """One Bot API request as received: the method, its parameters, and when (time.monotonic()); ``uploads`` are
    the files it posted, by form field."""

    method: str
    params: dict[str, Any]
    at: float
    status: int = 200
    uploads: dict[str, Upload] = field(default_factory=dict)


class _TelegramHtml(HTMLParser):
    """Telegram's HTML parse mode: the visible text, or ApiError 400 "can't parse entities"."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.text: list[str] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _TAGS or (tag == "span" and ("class", "tg-spoiler") not in attrs):
            raise _entities(f'Unsupported start tag "{tag}"')
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            raise _entities(f'Unexpected end tag "{tag}"')
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if "<" in data or ">" in data:
            raise _entities("Unsupported start tag")
        self.text.append(data)

    def handle_entityref(self, name: str) -> None:
        if name not in {"lt", "gt", "amp", "quot"}:
            raise _entities(f'Unsupported HTML entity "&{name};"')
        self.text.append(html.unescape(f"&{name};"))

    def handle_charref(self, name: str) -> None:
        self.text.append(html.unescape(f"&#{name};"))

    def parse(self, text: str) -> str:
        if re.search(r"&(?![a-zA-Z]+;|#\d+;|#x[0-9a-fA-F]+;)", text):
            raise _entities("Can't find end of the entity")
        self.feed(text)
        self.close()
        if self.stack:
            raise _entities(f'Can\'t find end tag corresponding to start tag "{self.stack[-1]}"')
        return "".join(self.text)


def _entities(problem: str) -> ApiError:
    return ApiError(400, f"Bad Request: can't parse entities: {problem}")


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass
class FakeBotApi:
    """The fake server's state; every public method is safe to call from any thread."""

    chats: dict[int, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)  # the messages the bot posted, in order
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # file_id -> (file_path, content)
    refuse_entities: str | None = None
    url: str = ""
    token: str = TOKEN  # the token it answers to, and the bot (getMe) that token is: another bot is another pair
    bot: dict[str, Any] = field(default_factory=lambda: dict(BOT))
    _updates: list[dict[str, Any]] = field(default_factory=list)
    _next_update: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _next_message: Iterator[int] = field(default_factory=lambda: itertools.count(100_000))
    _messages: set[tuple[int, int]] = field(default_factory=set)
    _floods: dict[str, list[int]] = field(default_factory=dict)
    confirmed: int = 0  # every update below this offset was confirmed (and forgotten)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _changed: asyncio.Event | None = None

    # ------------------------------------------------------------------------------------------------ test side
    def chat(self, chat_id: int, kind: str = "private", *, title: str = "", forum: bool = False) -> dict[str, Any]:
        """Register a chat (private, group, supergroup) and return its Chat object."""
        chat: dict[str, Any] = {"id": chat_id, "type": kind}
        if kind == "private":
            chat.update(first_name=title or f"User{chat_id}")
        else:
            chat["title"] = title or f"Group {chat_id}"
        if forum:
            chat["is_forum"] = True
        with self._lock:
            self.chats[chat_id] = chat
        return chat

    def add_update(self, **kinds: Any) -> int:
        """Queue an update (``message=…``, ``edited_message=…``, ``message_reaction=…``); returns its update_id."""
        with self._lock:
            update_id = next(self._next_update)
            self._updates.append({"update_id": update_id, **kinds})
            for value in kinds.values():
                if isinstance(value, dict) and "message_id" in value and "chat" in value:
                    self._messages.add((value["chat"]["id"], value["message_id"]))
        self._notify()
        return update_id

    def start_updates_at(self, update_id: int) -> None:
        """Number the next updates from ``update_id`` (each bot's update ids are its own sequence)."""
        with self._lock:
            self._next_update = itertools.count(update_id)

    def flood(self, method: str, *retry_after: int, after: int = 0) -> None:
        """Answer the next calls of ``method`` (after ``after`` more that succeed) with 429, one per ``retry_after``."""
        with self._lock:
            self._floods.setdefault(method, []).extend([-1] * after + list(retry_after))

    def add_file(self, file_id: str, path: str, content: bytes) -> None:
        with self._lock:
            self.files[file_id] = (path, content)

    def calls_of(self, method: str) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.method == method]

    def sent_messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.sent)

    def pending(self) -> int:
        """Updates not yet confirmed by a later getUpdates offset."""
        with self._lock:
            return len(self._updates)

    def _notify(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._pulse)

    def _pulse(self) -> None:
        if self._changed is not None:
            self._changed.set()
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------------------------------------ the API
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/bot{token}/{method}", self._endpoint, methods=["GET", "POST"]),
                Route("/file/bot{token}/{path:path}", self._download, methods=["GET"]),
            ]
        )

    async def _endpoint(self, request: Request) -> Response:
        method = request.path_params["method"]
        params, uploads = await _params(request)
        call = Call(method, params, time.monotonic(), uploads=uploads)
        with self._lock:
            self.calls.append(call)
        try:
            if request.path_params["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            for name, upload in uploads.items():  # the Bot API's limits on what a bot uploads
                if len(upload.data) > (PHOTO_UPLOAD_LIMIT if name == "photo" else UPLOAD_LIMIT):
                    raise ApiError(413, "Request Entity Too Large")
            result = await self._dispatch(method, params)
        except ApiError as exc:
            call.status = exc.code
            body: dict[str, Any] = {"ok": False, "error_code": exc.code, "description": exc.description}
            if exc.parameters:
                body["parameters"] = exc.parameters
            return JSONResponse(body, status_code=exc.code)
        return JSONResponse({"ok": True, "result": result})

    async def _dispatch(self, method: str, params: dict[str, Any]) -> Any:
        with self._lock:
            floods = self._floods.get(method)
            seconds = floods.pop(0) if floods else -1
            if seconds >= 0:
                raise ApiError(429, f"Too Many Requests: retry after {seconds}", retry_after=seconds)
        handlers = {
            "getMe": lambda p: self.bot,
            "deleteWebhook": lambda p: True,
            "getUpdates": self._get_updates,
            "sendMessage": self._send_message,
            "sendPhoto": lambda p: self._send_file(p, "photo"),
            "sendDocument": lambda p: self._send_file(p, "document"),
            "sendChatAction": self._chat_action,
            "getFile": self._get_file,
        }
        handler = handlers.get(method)
        if handler is None:
            raise ApiError(404, "Not Found")
        result = handler(params)
        return await result if asyncio.iscoroutine(result) else result

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset, limit = params.get("offset"), min(int(params.get("limit") or 100), 100)
        allowed = params.get("allowed_updates") or ["message", "edited_message", "channel_post", "callback_query"]
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        while True:
            with self._lock:
                if offset is not None:
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                    self.confirmed = max(self.confirmed, int(offset))
                ready = [u for u in self._updates if any(kind in u for kind in allowed)][:limit]
                changed = self._changed
            left = deadline - time.monotonic()
            if ready or left <= 0 or changed is None:
                return ready
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), left)

    def _chat(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self.chats.get(params.get("chat_id"))  # type: ignore[arg-type]
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        thread = params.get("message_thread_id")
        if thread is not None and not chat.get("is_forum"):
            raise ApiError(400, "Bad Request: message thread not found")
        reply = params.get("reply_parameters")
        if (
            reply
            and (chat["id"], reply["message_id"]) not in self._messages
            and not reply.get("allow_sending_without_reply")
        ):
            raise ApiError(400, "Bad Request: message to be replied not found")
        return chat

    def _message(self, chat: dict[str, Any], params: dict[str, Any], **content: Any) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": next(self._next_message),
            "date": int(time.time()),
            "chat": chat,
            "from": self.bot,
            **content,
        }
        if params.get("message_thread_id") is not None:
            message.update(message_thread_id=params["message_thread_id"], is_topic_message=True)
        reply = params.get("reply_parameters")
        if reply and (chat["id"], reply["message_id"]) in self._messages:
            message["reply_to_message"] = {"message_id": reply["message_id"], "date": 0, "chat": chat}
        self._messages.add((chat["id"], message["message_id"]))
        self.sent.append({**message, "params": params})
        return message

    def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        text = str(params.get("text") or "")
        with self._lock:
            chat = self._chat(params)
            if params.get("parse_mode") == "HTML":
                if self.refuse_entities and self.refuse_entities in text:
                    raise _entities("Can't find end of Bold entity at byte offset 12")
                text = _TelegramHtml().parse(text)
            elif params.get("parse_mode"):
                raise ApiError(400, f"Bad Request: unsupported parse_mode {params['parse_mode']}")
            if not text.strip():
                raise ApiError(400, "Bad Request: message text is empty")
            if utf16(text) > LIMIT:
                raise ApiError(400, "Bad Request: message is too long")
            return self._message(chat, params, text=text)

    def _send_file(self, params: dict[str, Any], kind: str) -> dict[str, Any]:
        source = params.get(kind)
        if source is None:
            raise ApiError(400, f"Bad Request: there is no {kind} in the request")
        with self._lock:
            chat = self._chat(params)
            file_id = f"sent-{kind}-{len(self.sent)}"
            media: dict[str, Any] = {"file_id": file_id, "file_unique_id": file_id}
            if kind == "photo":
                return self._message(chat, params, photo=[{**media, "width": 100, "height": 100}])
            return self._message(chat, params, document=media)

    def _chat_action(self, params: dict[str, Any]) -> bool:
        with self._lock:
            self._chat(params)
        if params.get("action") != "typing":
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    def _get_file(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            found = self.files.get(str(params.get("file_id")))
        if found is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        path, content = found
        return {
            "file_id": params["file_id"],
            "file_unique_id": "u-" + path,
            "file_size": len(content),
            "file_path": path,
        }

    async def _download(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return Response(status_code=401)
        with self._lock:
            for path, content in self.files.values():
                if path == request.path_params["path"]:
                    return Response(content)
        return Response(status_code=404)


async def _params(request: Request) -> tuple[dict[str, Any], dict[str, Upload]]:
    raw: dict[str, Any] = dict(request.query_params)
    uploads: dict[str, Upload] = {}
    kind = request.headers.get("content-type", "")
    if "application/json" in kind:
        raw.update(await request.json())
        return raw, uploads
    if request.method == "POST" and ("form" in kind):
        async with request.form() as form:  # closes the uploads' temporary files once read
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    uploads[name] = Upload(value.filename or "", value.content_type or "", await value.read())
                    raw[name] = {"upload": value.filename}
                else:
                    raw[name] = value
    params: dict[str, Any] = {}
    for name, value in raw.items():
        parsed: Any = value
        if isinstance(value, str) and name in _JSON_FIELDS:
            parsed = json.loads(value)
        elif isinstance(value, str) and name in _INT_FIELDS and value.lstrip("-").isdigit():
            parsed = int(value)
        params[name] = parsed
    if isinstance(params.get("photo"), str) and params["photo"].startswith("attach://"):
        params["photo"] = {"upload": params["photo"]}
    return params, uploads


@contextlib.contextmanager
def running_fake() -> Iterator[FakeBotApi]:
    """A fake Bot API on 127.0.0.1 (a free port) in a thread; ``fake.url`` is its base URL (telegram.api_url)."""
    fake = FakeBotApi()
    config = uvicorn.Config(fake.app(), host="127.0.0.1", port=0, log_config=None, lifespan="off", access_log=False)
    sock = tcp_listener("127.0.0.1", 0, backlog=128)  # not Config.bind_socket: see tcp_listener
    server = EmbeddedServer(config)
    ready = threading.Event()

    def serve() -> None:
        async def main() -> None:
            fake._loop = asyncio.get_running_loop()
            fake._pulse()
            ready.set()
            await server.serve(sockets=[sock])

        asyncio.run(main())

    thread = threading.Thread(target=serve, name="fake-bot-api", daemon=True)
    thread.start()
    ready.wait(10)
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    fake.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


# ------------------------------------------------------------------------------------------------ building updates
def user(user_id: int, first_name: str = "Ann", **extra: Any) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": first_name, **extra}


def message(
    chat: dict[str, Any], message_id: int, sender: dict[str, Any], text: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A Message object from ``sender`` in ``chat``."""
    body: dict[str, Any] = {"message_id": message_id, "date": int(time.time()), "chat": chat, "from": sender, **extra}
    if text is not None:
        body["text"] = text
    return body
