"""Salesforce's error shape, everywhere the emulator answers: a JSON array of {message, errorCode, fields}.

Routes that do not exist (404 NOT_FOUND), verbs a resource does not take (405 METHOD_NOT_ALLOWED), a
malformed test-hook request (400) and anything unexpected (500 UNKNOWN_EXCEPTION) come in that shape too,
as a client reading Salesforce's errors expects. Only the OAuth token endpoint answers in OAuth's own
{"error", "error_description"} shape, as Salesforce's does.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.sandbox.hooks import BadHookRequest

logger = logging.getLogger(__name__)

NOT_FOUND = "The requested resource does not exist"
VERBS = ("HEAD", "GET", "POST", "PATCH", "PUT", "DELETE")


class ApiError(Exception):
    """An answer in Salesforce's error shape."""

    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        body: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            body["fields"] = self.fields
        return JSONResponse([body], status_code=self.status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        offered = {verb.strip() for verb in (exc.headers or {}).get("Allow", "").split(",")}
        allowed = ",".join(verb for verb in VERBS if verb in offered)  # in a fixed order: Starlette's is a set's
        message = f"HTTP Method '{request.method}' not allowed. Allowed are {allowed}"
        return ApiError(405, "METHOD_NOT_ALLOWED", message).response({"Allow": allowed})
    if exc.status_code == 404:
        return ApiError(404, "NOT_FOUND", NOT_FOUND).response()
    return ApiError(exc.status_code, "INVALID_REQUEST", exc.detail).response()


async def _bad_hook(request: Request, exc: Exception) -> Response:
    return ApiError(400, "INVALID_REQUEST", str(exc)).response()


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.error("the Salesforce emulator failed on %s %s", request.method, request.url.path, exc_info=exc)
    return ApiError(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId.").response()


EXCEPTION_HANDLERS = {HTTPException: _http_error, BadHookRequest: _bad_hook, Exception: _unexpected}
