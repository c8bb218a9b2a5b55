"""An OpenAI-compatible API on gated's HTTP surface: any OpenAI client can talk to a group's agent.

* ``GET /v1/models``: the groups the calling key may use, as models (``gated apikey add --group F``).
* ``POST /v1/chat/completions`` with ``model`` = a group folder: the newest ``user`` message goes to the group's agent
  (the agent keeps the history in its session, so what a client resends of earlier turns is not sent again), and
  the agent's replies come back as the answer: all at once, or with ``"stream": true`` as Server-Sent Events, one
  chunk per reply as it is stored, then ``data: [DONE]``.

Where the messages go, and why: a conversation is a topic of the group's built-in web chat, ``web:<folder>``, topic
``api-<key id>`` (one session per key) or ``api-<key id>-<16 hex of sha256(name)>`` for a conversation the client
names, with the ``X-Kanmon-Conversation`` header or else the body's ``user`` field. Web topics already are what a
conversation needs: each is its own agent session, they run in parallel (the lane of a ``web:`` chat is its topic,
SPEC §2), they need no route and no deliverer, and the gateway's live feed of the web chat says when replies arrive.
The web chat of the folder shows these conversations too (to whoever holds its web token). The answer is read back
from the store (:mod:`kanmon.web.openai_replies`): every reply is an outbound row before anyone sees it.

A completion that takes longer than ``openai.timeout`` answers 504 (a stream ends with an error event); the run is
not stopped, and its replies are stored and shown in the web chat. A client that goes away mid-stream changes
nothing either. Errors have OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kanmon.errors import InvalidInput
from kanmon.gateway import DEAD_LETTER_TEXT, Gateway
from kanmon.gateway.typing import is_status_only
from kanmon.message_ids import derived_id
from kanmon.store import ApiKey, Message, NewMessage, PutResult, StoreError
from kanmon.web.auth_first import AuthFirstRoute, MalformedJSON
from kanmon.web.deps import WebConfig, get_config, get_gateway
from kanmon.web.openai_auth import ApiError, api_key
from kanmon.web.openai_replies import Answer, follow_answer
from kanmon.web.openai_schema import COMPLETION_EXAMPLES, Model, ModelList
from kanmon.web.validation import storable_text

__all__ = ["CONVERSATION_HEADER", "CompletionRequest", "api_error", "conversation_topic", "router"]

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible API"], route_class=AuthFirstRoute)

CONVERSATION_HEADER = "X-Kanmon-Conversation"
KEEPALIVE_SECONDS = 15.0
MAX_CONVERSATION_CHARS = 512
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or wrong API key."},
    404: {"description": "No such model (group) for this key."},
}

GatewayDep = Annotated[Gateway, Depends(get_gateway)]
ConfigDep = Annotated[WebConfig, Depends(get_config)]
KeyDep = Annotated[ApiKey, Depends(api_key)]


class ChatMessage(BaseModel):
    """One message of the request (only the newest ``user`` one is used)."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class CompletionRequest(BaseModel):
    """The fields of OpenAI's chat completion request that kanmon reads; the others are accepted and ignored."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"examples": [{"model": "corp", "messages": [{"role": "user", "content": "hello"}]}]},
    )

    model: str = Field(min_length=1, max_length=600)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    user: str | None = Field(default=None, max_length=MAX_CONVERSATION_CHARS)


async def api_error(request: Request, exc: Exception) -> Response:
    """The exception handler that turns :class:`ApiError` into OpenAI's error body."""
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body(), status_code=exc.status)


def conversation_topic(key_id: str, conversation: str | None) -> str:
    """The web-chat topic of a conversation: ``api-<key id>``, or ``api-<key id>-<16 hex of sha256(name)>``."""
    if not conversation:
        return f"api-{key_id}"
    return f"api-{key_id}-{hashlib.sha256(conversation.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"


# ------------------------------------------------------------------------------------------------ routes
@router.get(
    "/models",
    summary="The groups this API key may use, as models.",
    responses={401: ERROR_RESPONSES[401]},
    response_model=ModelList,
)
async def list_models(key: KeyDep, gateway: GatewayDep) -> dict[str, Any]:
    models = [_model(group) for group in await _usable_groups(gateway, key)]
    return {"object": "list", "data": models}


@router.get(
    "/models/{model:path}",
    summary="One model (group) this API key may use.",
    responses=ERROR_RESPONSES,
    response_model=Model,
)
async def get_model(model: str, key: KeyDep, gateway: GatewayDep) -> dict[str, Any]:
    if model not in await _usable_groups(gateway, key):
        raise _no_model(model)
    return _model(model)


@router.post(
    "/chat/completions",
    summary="Send the newest user message to the group `model`'s agent; answer with its replies.",
    response_model=None,
    openapi_extra=COMPLETION_EXAMPLES["request"],
    responses={
        200: COMPLETION_EXAMPLES["answer"],
        **ERROR_RESPONSES,
        400: {"description": "No user message, or a malformed body."},
        502: {"description": "The agent failed on this message (dead-lettered after its retries)."},
        503: {"description": "gated is not serving (starting, draining) or its store is unreachable."},
        504: {"description": "No answer within openai.timeout; the run goes on and its replies are stored."},
    },
)
async def chat_completions(
    request: Request,
    key: KeyDep,
    gateway: GatewayDep,
    config: ConfigDep,
    conversation: Annotated[
        str | None,
        Header(alias=CONVERSATION_HEADER, description="Names the conversation (one agent session each)."),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", description="A retry with the same key is the same message, answered once."),
    ] = None,
) -> Response:
    body = await _request_body(request)
    if body.model not in await _usable_groups(gateway, key):
        raise _no_model(body.model)
    if request.app.state.draining or not gateway.active:
        raise ApiError(503, "gated is not serving right now; retry shortly.", type="server_error")
    text = _newest_user_text(body.messages)
    topic = conversation_topic(key.id, (conversation or "").strip()[:MAX_CONVERSATION_CHARS] or body.user)
    new = NewMessage(
        id=_message_id(key.id, idempotency_key),
        chat_jid=f"web:{body.model}",
        content=text,
        sender=f"api:{key.id}",
        sender_name=key.name or f"api key {key.id}",
        topic=topic,
        origin="openai",
    )
    put = await _store(gateway, new)
    if not put.created and (put.message.chat_jid, put.message.topic, put.message.content) != (
        new.chat_jid,
        new.topic,
        new.content,
    ):
        # the IETF Idempotency-Key draft (§2.7): a key reused with another payload is 422, not the first answer
        raise ApiError(422, "This Idempotency-Key was used for a different request; use a new key for a new one.")
    completion = _Completion(gateway, body.model, config.openai_timeout, put.message)
    headers = {"X-Kanmon-Topic": topic}
    if body.stream:
        return StreamingResponse(
            completion.stream(),
            media_type="text/event-stream",
            headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    return JSONResponse(await completion.whole(), headers=headers)


# ------------------------------------------------------------------------------------------------ the completion
class _Completion:
    """One request's stored message, followed until answered (or until the timeout)."""

    def __init__(self, gateway: Gateway, model: str, timeout: float, message: Message) -> None:
        self.gateway = gateway
        self.model = model
        self.timeout = timeout
        self.message = message
        self.id = f"chatcmpl-{message.id}"
        self.created = int(message.timestamp.timestamp())

    async def _answers(self) -> AsyncGenerator[Answer, None]:
        # subscribed before follow_answer's first store read: a reply is in that read, or wakes it later
        async with self.gateway.feed.subscribe(self.message.chat_jid) as subscription:
            async for answer in follow_answer(self.gateway, subscription, self.message):
                yield answer

    async def whole(self) -> dict[str, Any]:
        """The non-streaming answer: every reply, joined by a blank line."""
        replies: list[str] = []
        runs: set[str] = set()

        async def collect() -> None:
            async for answer in self._answers():
                if answer.reply is not None and _answers(answer.reply):
                    replies.append(answer.reply.content)
                    runs.update([answer.reply.run_id] if answer.reply.run_id else [])
                elif answer.settled == "dead" and not replies:
                    raise _agent_failed()

        try:
            await asyncio.wait_for(collect(), self.timeout)
        except TimeoutError:
            raise self._timed_out() from None
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "\n\n".join(replies)},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": await self._usage(runs),
        }

    async def _usage(self, runs: set[str]) -> dict[str, int]:
        """OpenAI's ``usage`` of the runs that answered, as their agents reported it (recorded with the run's end, which
        settled the message): prompt tokens count cache reads and writes too, as OpenAI's do. Zeros when none did."""
        sums = await self.gateway.db.once(self.gateway.store.usage_sums, [], runs=sorted(runs)) if runs else []
        prompt = sum(s.input_tokens + s.cache_read_tokens + s.cache_write_tokens for s in sums)
        completion = sum(s.output_tokens for s in sums)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    async def stream(self) -> AsyncIterator[str]:
        """The streaming answer: a chunk per reply as it is stored, keep-alive comments, then ``[DONE]``.

        An error after the stream began (the timeout, a dead letter, the store) is an ``error`` event, as OpenAI
        sends it; the stream then ends without ``[DONE]``.
        """
        answers = self._answers()
        # one pending read at a time, never cancelled by a keep-alive (cancelling it would end the answers)
        upcoming: asyncio.Future[Answer] | None = None
        deadline = asyncio.get_running_loop().time() + self.timeout
        sent = 0
        try:
            yield self._chunk({"role": "assistant", "content": ""})
            while True:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    raise self._timed_out()
                upcoming = upcoming or asyncio.ensure_future(anext(answers))
                done, _ = await asyncio.wait({upcoming}, timeout=min(left, KEEPALIVE_SECONDS))
                if not done:
                    yield ": keep-alive\n\n"
                    continue
                answer, upcoming = upcoming.result(), None
                if answer.reply is not None and _answers(answer.reply):
                    yield self._chunk({"content": ("\n\n" if sent else "") + answer.reply.content})
                    sent += 1
                if answer.reply is not None:
                    continue
                if answer.settled == "dead" and sent == 0:
                    raise _agent_failed()
                yield self._chunk({}, finish="stop")
                yield "data: [DONE]\n\n"
                return
        except ApiError as exc:
            yield f"event: error\ndata: {json.dumps(exc.body())}\n\n"
        finally:
            # a client that left cancels this generator (starlette's task group): settle the pending read first,
            # shielded from that cancellation, or closing the answers finds them still running
            with anyio.CancelScope(shield=True):
                if upcoming is not None:
                    upcoming.cancel()
                    await asyncio.gather(upcoming, return_exceptions=True)
                await answers.aclose()

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> str:
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    def _timed_out(self) -> ApiError:
        return ApiError(
            504,
            f"The agent did not finish within {self.timeout:g}s (openai.timeout). The run goes on; its replies are "
            f"stored and shown in the web chat of {self.model}, topic {self.message.topic}.",
            type="server_error",
            code="timeout",
        )


# ------------------------------------------------------------------------------------------------ helpers
async def _store(gateway: Gateway, new: NewMessage) -> PutResult:
    try:
        return await gateway.put_message(new)
    except InvalidInput as exc:
        raise ApiError(400, str(exc)) from None
    except StoreError:
        raise ApiError(503, "The store is unavailable; retry shortly.", type="server_error") from None


async def _request_body(request: Request) -> CompletionRequest:
    try:
        raw = await request.json()
    except (ValueError, RecursionError) as exc:  # raised on a route of another class than AuthFirstRoute
        raw = MalformedJSON(exc)
    if isinstance(raw, MalformedJSON):  # how AuthFirstRoute hands over a body that does not parse
        raise ApiError(400, "The body is not valid JSON.")
    if not isinstance(raw, dict):
        raise ApiError(400, f"The body must be a JSON object, not {type(raw).__name__}.")
    try:
        return CompletionRequest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "the body"  # () when the body is no object
        raise ApiError(400, f"Invalid request: {where}: {first.get('msg', 'invalid')}") from None


def _newest_user_text(messages: list[ChatMessage]) -> str:
    """The text of the last ``user`` message (its text parts, joined by newlines); 400 when there is none."""
    for message in reversed(messages):
        if message.role != "user":
            continue
        content = message.content
        if isinstance(content, list):
            parts = [part.get("text") for part in content if part.get("type") == "text"]
            content = "\n".join(part for part in parts if isinstance(part, str))
        if not content or not content.strip():
            raise ApiError(400, "The newest user message has no text.")
        try:
            return storable_text(content)
        except ValueError as exc:
            raise ApiError(400, f"The newest user message {exc}.") from None
    raise ApiError(400, "The request has no user message.")


async def _usable_groups(gateway: Gateway, key: ApiKey) -> list[str]:
    """The key's groups that are registered now (a removed group is gone from every key already)."""
    try:
        groups = {group.folder for group in await gateway.db.once(gateway.store.list_groups)}
    except StoreError:
        raise ApiError(503, "The store is unavailable; retry shortly.", type="server_error") from None
    return [folder for folder in key.groups if folder in groups]


def _message_id(key_id: str, idempotency_key: str | None) -> str | None:
    """The stored message's id: derived from the client's ``Idempotency-Key`` (so a retried request finds the same
    message and its answer instead of asking the agent again), else generated by the store."""
    if not idempotency_key:
        return None
    digest = hashlib.sha256(idempotency_key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return derived_id("api-", key_id, digest)


def _model(folder: str) -> dict[str, Any]:
    return {"id": folder, "object": "model", "created": 0, "owned_by": "kanmon"}


def _no_model(model: str) -> ApiError:
    return ApiError(404, f"The model '{model}' does not exist or you do not have access to it.", code="model_not_found")


def _answers(row: Message) -> bool:
    """Whether reply ``row`` is part of the answer: not the gateway's apology for a failed run, and not ``⏳`` status
    lines only (the agent saying it is still at work: progress the web chat shows, not what a client asked for)."""
    return not _apology(row) and not is_status_only(row.content)


def _apology(row: Message) -> bool:
    """The gateway's dead-letter apology: to an API client the failure is a 502, not a text."""
    return row.run_id is None and row.content == DEAD_LETTER_TEXT


def _agent_failed() -> ApiError:
    message = f"The agent failed on this message: {DEAD_LETTER_TEXT}"
    return ApiError(502, message, type="server_error", code="agent_failed")
