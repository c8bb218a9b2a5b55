"""What the OpenAPI document says of the OpenAI-compatible API (:mod:`kanmon.web.openai_api`): its answers' shapes
and examples. Declarations only: the routes build their answers as dicts in OpenAI's shape, and these models
describe exactly those keys (``/v1/models`` answers through them)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic.config import JsonDict

__all__ = ["COMPLETION_EXAMPLES", "ChatCompletion", "Model", "ModelList"]

_MODEL: JsonDict = {"id": "corp", "object": "model", "created": 0, "owned_by": "kanmon"}
STREAM_EXAMPLE = (
    'data: {"id":"chatcmpl-m-7","object":"chat.completion.chunk","created":1796040000,"model":"corp",'
    '"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null,"logprobs":null}]}\n\n'
    'data: {"id":"chatcmpl-m-7","object":"chat.completion.chunk","created":1796040000,"model":"corp",'
    '"choices":[{"index":0,"delta":{"content":"echo: hello"},"finish_reason":null,"logprobs":null}]}\n\n'
    'data: {"id":"chatcmpl-m-7","object":"chat.completion.chunk","created":1796040000,"model":"corp",'
    '"choices":[{"index":0,"delta":{},"finish_reason":"stop","logprobs":null}]}\n\n'
    "data: [DONE]\n\n"
)


class Model(BaseModel):
    """A group this key may use, as a model."""

    model_config = ConfigDict(json_schema_extra={"examples": [_MODEL]})

    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"object": "list", "data": [_MODEL]}]})

    object: Literal["list"]
    data: list[Model]


class ChatCompletion(BaseModel):
    """The whole answer (without ``"stream": true``): every reply of the agent, joined by a blank line."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "chatcmpl-m-7",
                    "object": "chat.completion",
                    "created": 1796040000,
                    "model": "corp",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "echo: hello"},
                            "finish_reason": "stop",
                            "logprobs": None,
                        }
                    ],
                    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                }
            ]
        }
    )

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[dict[str, Any]]
    usage: dict[str, int]


#: The request body and the two kinds of answer of ``POST /v1/chat/completions``, for its ``openapi_extra`` and
#: ``responses``.
COMPLETION_EXAMPLES: dict[str, Any] = {
    "request": {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/CompletionRequest"},
                    "example": {"model": "corp", "messages": [{"role": "user", "content": "hello"}], "stream": False},
                }
            },
        }
    },
    "answer": {
        "model": ChatCompletion,
        "description": "The agent's replies; with `stream: true`, Server-Sent Events of chunks, then `[DONE]`.",
        "content": {"text/event-stream": {"schema": {"type": "string"}, "example": STREAM_EXAMPLE}},
    },
}
