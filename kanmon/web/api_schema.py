"""The OpenAPI document of one gated, finished: one error model, security schemes, examples, SSE payloads.

FastAPI builds the document from the routes; :func:`openapi` then makes it say what the app really does, in one
place rather than on each route, so a route added later gets it too:

* **Errors.** Every error answer of kanmon's own routes is :class:`ErrorBody` ``{"detail": …}``: a sentence, or for a
  422 the list the validation handler of :mod:`kanmon.web.app` makes (``loc``, ``msg``, ``type``; never the input).
  Every 4xx/5xx response gets that schema and an example; FastAPI's ``HTTPValidationError`` (which promises fields
  the app never sends) is gone. The OpenAI-compatible routes answer in OpenAI's shape, :class:`OpenAIError`, because
  OpenAI's clients parse it; only the body limit's 413 there is an :class:`ErrorBody`. Every operation with a
  request body may get 413 (the body limit), every authenticated one 503 (the store unreachable).
* **Security.** Found from each route's dependencies, never declared by hand: the channel secret, an adapter token,
  a group's web token (also as ``?token=`` on the event stream, which ``EventSource`` needs), an API key.
* **Examples.** Each JSON body (request and response) gets its schema's first example as the media type's
  ``example``; a list of models an example of one.
* **Events.** The web chat's stream (``message``: :class:`~kanmon.web.webchat.ChatEvent`, ``working``:
  :class:`WorkingEvent`) and the OpenAI stream are described, their payload schemas added to the components.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from kanmon.web import adapters as adapter_api
from kanmon.web import openai_auth, webchat_auth
from kanmon.web.openai_api import CompletionRequest
from kanmon.web.webchat import ChatEvent

__all__ = ["ErrorBody", "FieldError", "OpenAIError", "WorkingEvent", "openapi"]

REF = "#/components/schemas/{model}"


# ------------------------------------------------------------------------------------------------ models
class FieldError(BaseModel):
    """One problem of a refused request (a 422): where, what, and pydantic's name for it."""

    loc: list[str] = Field(description='Where: `["body", "content"]`, `["query", "after"]`, …')
    msg: str
    type: str


class ErrorBody(BaseModel):
    """The body of every error answer of kanmon's own routes."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"detail": webchat_auth.REFUSED},
                {"detail": [{"loc": ["body", "content"], "msg": "Field required", "type": "missing"}]},
            ]
        }
    )

    detail: str | list[FieldError] = Field(description="What went wrong: a sentence, or (422) each field's problem.")


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str = Field(description="`invalid_request_error` or `server_error`.")
    param: str | None
    code: str | None = Field(description="`invalid_api_key`, `model_not_found`, `timeout`, `agent_failed`, or null.")


class OpenAIError(BaseModel):
    """The error body of the OpenAI-compatible API: OpenAI's own shape, which its clients parse."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "message": "The model 'sales' does not exist or you do not have access to it.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "model_not_found",
                    }
                }
            ]
        }
    )

    error: OpenAIErrorDetail


class WorkingEvent(BaseModel):
    """The ``data`` of a ``working`` event of the web chat's stream (no ``id:``; never stored)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"topic": "t-3f9a", "working": True}]})

    topic: str
    working: bool = Field(description="true when a run starts on the topic; false at its first reply or its end.")


# ------------------------------------------------------------------------------------------------ what is added
#: The error each status usually means (the example shown); 422's is the list example of :class:`ErrorBody`.
ERROR_EXAMPLES: dict[str, str] = {
    "400": "chat_jid 'discord:1' does not start with one of this adapter's prefixes (telegram:)",
    "401": webchat_auth.REFUSED,
    "403": "channel registration is disabled: set http.channel_secret",
    "404": "no group 'Bad Name': not a valid folder name",
    "409": "JID prefix 'telegram:' is claimed by adapter 'tg'; that adapter must give it up first",
    "413": "request body larger than 1048576 bytes",
    "503": "the store is unavailable; retry shortly",
}
STORE_UNAVAILABLE = {"description": "The store is unreachable, or gated is not serving (starting, draining); retry."}
TOO_LARGE = {"description": "The body is larger than http.max_body_bytes (uploads: attachments.max_bytes)."}

SCHEMES: dict[str, dict[str, Any]] = {
    "channelSecret": {"type": "http", "scheme": "bearer", "description": "`http.channel_secret`."},
    "adapterToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "The adapter's token, from `POST /v1/channels/register`.",
    },
    "webToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "The group's web token (`gated group web-token FOLDER`).",
    },
    "webTokenQuery": {
        "type": "apiKey",
        "in": "query",
        "name": "token",
        "description": "The web token in the URL: the event stream only (EventSource cannot set headers).",
    },
    "apiKey": {"type": "http", "scheme": "bearer", "description": "An API key `kmk_…` (`gated apikey add`)."},
}
#: The dependency that checks a credential -> the security requirements of a route that depends on it.
SECURITY: dict[Callable[..., Any], list[dict[str, list[str]]]] = {
    adapter_api.channel_secret: [{"channelSecret": []}],
    adapter_api.current_adapter: [{"adapterToken": []}],
    webchat_auth.web_group: [{"webToken": []}],
    webchat_auth.web_group_for_stream: [{"webToken": []}, {"webTokenQuery": []}],
    openai_auth.api_key: [{"apiKey": []}],
}
OPENAI_TAG = "OpenAI-compatible API"

SSE_EXAMPLE = (
    "retry: 2000\n\n"
    'id: 41\nevent: message\ndata: {"seq":41,"id":"m-7","direction":"in","role":"user","sender":"web:anon-1a2b3c4d",'
    '"content":"hello","topic":"t-3f9a","time":"2026-11-30T12:00:00+00:00","attachments":[]}\n\n'
    'event: working\ndata: {"topic":"t-3f9a","working":true}\n\n'
    'id: 42\nevent: message\ndata: {"seq":42,"id":"r-8","direction":"out","role":"assistant","sender":"corp",'
    '"content":"echo: hello","topic":"t-3f9a","time":"2026-11-30T12:00:02+00:00","attachments":[]}\n\n'
    'event: working\ndata: {"topic":"t-3f9a","working":false}\n\n'
    ": keep-alive\n\n"
)


# ------------------------------------------------------------------------------------------------ the document
def openapi(app: FastAPI) -> dict[str, Any]:
    """The finished document of ``app`` (made once, then cached on the app like FastAPI's own)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
        webhooks=app.webhooks.routes,
        tags=app.openapi_tags,
    )
    schemas = _components(document)
    for route in _api_routes(app):
        for method in route.methods:
            _finish(document["paths"][route.path_format][method.lower()], route)
    for path_item in document.get("webhooks", {}).values():
        for operation in path_item.values():
            operation["responses"].pop("422", None)  # FastAPI's; an adapter's 422 is one of the final 4XX
    for kind in ("paths", "webhooks"):
        for operation in (op for path_item in document.get(kind, {}).values() for op in path_item.values()):
            _examples(operation, schemas)
    app.openapi_schema = document
    return document


def _components(document: dict[str, Any]) -> dict[str, Any]:
    """The document's schemas with kanmon's added (and their examples as written), FastAPI's validation error
    schemas gone; the security schemes."""
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    _add_models(schemas, [ErrorBody, OpenAIError, WorkingEvent, ChatEvent, CompletionRequest])
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for name, examples in _model_examples().items():
        if name in schemas:
            schemas[name]["examples"] = examples
    document["components"]["securitySchemes"] = SCHEMES
    return schemas


def _model_examples() -> dict[str, list[Any]]:
    """Each kanmon model's examples by its name, as written: FastAPI drops every null when it encodes the document,
    and an example shows a field kanmon sends as null (``reply_to``, ``thread_id``) with its null."""
    found: dict[str, list[Any]] = {}
    stack = list(BaseModel.__subclasses__())
    while stack:
        model = stack.pop()
        stack.extend(model.__subclasses__())
        extra = model.model_config.get("json_schema_extra")
        examples = extra.get("examples") if isinstance(extra, dict) else None
        if model.__module__.startswith("kanmon.") and isinstance(examples, list):
            found[model.__name__] = examples
    return found


def _api_routes(app: FastAPI) -> Iterator[Any]:
    """The routes in the document: APIRoutes, or (FastAPI >= 0.16x, where included routers stay nested) the
    contexts FastAPI itself walks, which answer ``path_format``, ``methods`` and ``dependant`` like a route."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    routes = app.routes if contexts is None else contexts(app.routes)
    route: Any
    for route in routes:
        original = route if contexts is None else route.original_route
        if isinstance(original, APIRoute) and route.include_in_schema:
            yield route


def _add_models(schemas: dict[str, Any], models: list[type[BaseModel]]) -> None:
    _, found = models_json_schema([(model, "serialization") for model in models], ref_template=REF)
    for name, schema in found.get("$defs", {}).items():
        schemas.setdefault(name, schema)


def _finish(operation: dict[str, Any], route: Any) -> None:
    """Security, the common errors and the error bodies of one operation."""
    security: list[dict[str, list[str]]] = []
    for call in _calls(route.dependant):
        security += [requirement for requirement in SECURITY.get(call, []) if requirement not in security]
    operation.pop("security", None)
    if security:
        operation["security"] = security
    responses: dict[str, Any] = operation["responses"]
    openai = OPENAI_TAG in (operation.get("tags") or [])
    if openai:
        responses.pop("422", None)  # its body is parsed by hand: a bad one is a 400 in OpenAI's shape
    if "requestBody" in operation:
        responses.setdefault("413", dict(TOO_LARGE))
    if security:
        responses.setdefault("503", dict(STORE_UNAVAILABLE))
    for status, response in responses.items():
        if status[0] in "45" and not (route.path == "/readyz" and status == "503"):  # readiness has its own body
            model = "OpenAIError" if openai and status != "413" else "ErrorBody"
            response["content"] = {"application/json": {"schema": {"$ref": REF.format(model=model)}}}
            if model == "ErrorBody":
                response["content"]["application/json"]["example"] = _error_example(status)
    if route.path == "/web/{folder:path}/stream":
        _describe_stream(responses["200"])


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def _error_example(status: str) -> dict[str, Any]:
    if status == "422":
        return {"detail": [{"loc": ["body", "content"], "msg": "Field required", "type": "missing"}]}
    return {"detail": ERROR_EXAMPLES.get(status, "…")}


def _describe_stream(response: dict[str, Any]) -> None:
    response["content"] = {
        "text/event-stream": {
            "schema": {
                "type": "string",
                "description": "Server-Sent Events: `message` (data: ChatEvent), `working` (data: WorkingEvent).",
                "x-events": {
                    "message": {"$ref": REF.format(model="ChatEvent")},
                    "working": {"$ref": REF.format(model="WorkingEvent")},
                },
            },
            "example": SSE_EXAMPLE,
        }
    }


def _examples(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Each JSON body without an example gets one from its schema."""
    bodies = [operation.get("requestBody", {}), *operation.get("responses", {}).values()]
    for body in bodies:
        for media in body.get("content", {}).values():
            if "example" not in media and "examples" not in media and "schema" in media:
                found = example_of(media["schema"], schemas)
                if found is not None:
                    media["example"] = found


def example_of(schema: dict[str, Any], schemas: dict[str, Any]) -> Any:
    """The first example of ``schema`` (following ``$ref``; a list of one item for an array), or None."""
    if "$ref" in schema:
        return example_of(schemas[schema["$ref"].rsplit("/", 1)[1]], schemas)
    if schema.get("examples"):
        return schema["examples"][0]
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        item = example_of(schema["items"], schemas)
        return None if item is None else [item]
    return None
