"""Routes that ask who is calling before they say what is wrong with the body.

FastAPI reads and parses a route's body before it solves the route's dependencies, and answers a body it cannot parse
at once: malformed JSON is a 422 ``JSON decode error``, JSON nested deeper than the parser recurses (RecursionError,
not a ValueError) a 400 "There was an error parsing the body", a multipart body without its boundary a 400. A caller
with no credentials learned how the body is parsed before it was asked for any: the authentication dependencies
never ran.

:class:`AuthFirstRoute` (FastAPI's documented custom route class hook) gives the handler a request whose parse failure
becomes a placeholder body instead of an answer. The dependencies run first (no credentials: 401, as for any other
body); then the placeholder fails the body's validation, and :func:`parse_failure` turns that into the answer FastAPI
would have given, so an authenticated caller still gets "JSON decode error" with its position.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = ["AuthFirstRoute", "MalformedForm", "MalformedJSON", "parse_failure"]


class MalformedJSON:
    """The body of a request whose JSON did not parse: where (a character offset) and why."""

    def __init__(self, error: ValueError | RecursionError) -> None:
        self.pos = error.pos if isinstance(error, json.JSONDecodeError) else 0
        if isinstance(error, RecursionError):
            self.reason = "nested too deeply"
        else:
            self.reason = error.msg if isinstance(error, json.JSONDecodeError) else str(error)


class MalformedForm(FormData):
    """An empty form standing for a form body that did not parse, with the answer the parser gave."""

    def __init__(self, error: StarletteHTTPException) -> None:
        super().__init__()
        self.error = error


class _ParseLater(Request):
    async def json(self) -> Any:
        try:
            return await super().json()
        # JSONDecodeError, UnicodeDecodeError for bytes in no JSON encoding, or RecursionError for arrays and objects
        # nested deeper than the parser goes (the C parser gives up at once, so the caller costs gated nothing)
        except (ValueError, RecursionError) as exc:
            return MalformedJSON(exc)

    async def _get_form(self, **limits: Any) -> FormData:
        try:
            return await super()._get_form(**limits)
        except StarletteHTTPException as exc:  # starlette's answer to a multipart body it cannot split (400)
            return MalformedForm(exc)


class AuthFirstRoute(APIRoute):
    """An :class:`~fastapi.routing.APIRoute` whose body parse failures are answered after its dependencies ran."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def parsing_after_auth(request: Request) -> Response:
            return await handler(_ParseLater(request.scope, request.receive))

        return parsing_after_auth


def parse_failure(exc: RequestValidationError) -> StarletteHTTPException | RequestValidationError | None:
    """What FastAPI would have answered for a body :class:`AuthFirstRoute` could not parse (None when it parsed):
    the parser's HTTPException, or a RequestValidationError of type ``json_invalid``."""
    body = exc.body
    if isinstance(body, MalformedForm):
        return body.error
    if isinstance(body, MalformedJSON):
        error = {"type": "json_invalid", "loc": ("body", body.pos), "msg": "JSON decode error", "input": {}}
        return RequestValidationError([{**error, "ctx": {"error": body.reason}}])
    return None
