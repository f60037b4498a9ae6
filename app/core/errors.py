"""One JSON error shape for every 4xx/5xx: ``{"error": {"code", "message", "details"}}``.

Exception text never reaches the client; unexpected errors are logged with the
request id and answered with a generic 500.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from app.core.headers import apply_security_headers

if TYPE_CHECKING:  # imported where used: the worker needs ApiError, not FastAPI (memory)
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

log = logging.getLogger("mission_control.errors")

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
    504: "timeout",
}


class ApiError(Exception):
    """An error meant for the client, with a stable machine-readable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    from fastapi.responses import JSONResponse

    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


# Bounded validation answers: at most this many details, each part of a
# location and each message cut, and the whole answer below a size cap.
MAX_ERROR_DETAILS = 20
MAX_LOC_PARTS = 8
MAX_TEXT_CHARS = 120
MAX_ERROR_BODY_BYTES = 8 * 1024


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT_CHARS else text[: MAX_TEXT_CHARS - 1] + "…"


def _clean_validation_errors(errors: Any) -> list[dict[str, Any]]:
    """Validation details without the offending input (it may hold a secret),
    at most ``MAX_ERROR_DETAILS`` of them, each bounded in size."""
    cleaned: list[dict[str, Any]] = []
    for err in errors[:MAX_ERROR_DETAILS]:
        loc = [_cut(str(part)) for part in err.get("loc", ())]
        cleaned.append(
            {
                "loc": loc[:MAX_LOC_PARTS],
                "type": _cut(str(err.get("type", "invalid"))),
                "message": _cut(str(err.get("msg", "invalid value"))),
            }
        )
    return cleaned


def bounded_validation_body(errors: Any) -> tuple[list[dict[str, Any]], int]:
    """The details to send and how many were left out, under ``MAX_ERROR_BODY_BYTES``."""
    import json

    details = _clean_validation_errors(errors)
    while details and len(json.dumps(details)) > MAX_ERROR_BODY_BYTES - 512:
        details.pop()
    return details, len(errors) - len(details)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    from starlette.exceptions import HTTPException as StarletteHTTPException

    assert isinstance(exc, StarletteHTTPException)
    code = getattr(exc, "code", None) or _STATUS_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 400 and "parsing the body" in message:
        code, message = "invalid_body", "the request body could not be decoded as JSON"
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, message, None, headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    from fastapi.exceptions import RequestValidationError

    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    details, omitted = bounded_validation_body(errors)
    if any(d["type"] == "json_invalid" for d in details):
        return error_response(400, "invalid_json", "the request body is not valid JSON", details)
    message = "the request is not valid"
    if omitted:
        message += f" ({len(errors)} problems; the first {len(details)} are listed)"
    return error_response(422, "validation_failed", message, details)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "unhandled error",
        extra={
            "request_id": getattr(request.state, "request_id", None),
            "exc_type": type(exc).__name__,
        },
        exc_info=exc,
    )
    response = error_response(500, "internal_error", "the server could not complete the request")
    # This answer comes from outside the edge middleware: add its headers here.
    apply_security_headers(response.headers, hsts=bool(getattr(request.state, "secure", False)))
    return response


def install_error_handlers(app: FastAPI) -> None:
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
