"""One error shape for everything a service answers: `{"error", "message", "field"}`.

`error` is a stable code, `message` Vietnamese for a person, `field` the input at fault or
null. `install_error_handlers(app)` (called by `ServiceRuntime.install`) answers in that shape:

- `ServiceError` and its subclasses, raised by any layer, domain included. Domain errors
  carry no HTTP status: `STATUS` maps each class to one (`Invalid` 422, `NotFound` 404,
  `Conflict` 409, `Forbidden` 403, `Unauthorized` 401, `TooManyRequests` 429, ...). A
  subclass or instance that still sets `status_code` keeps it (older services).
- request validation: 422 naming the field in Vietnamese; malformed JSON, a body that is
  not UTF-8 or nested deeper than 64 levels 400 with `field` null; a body that is not JSON
  415; a missing body 422; a body over the limit 413 (`BodyLimits`, from SOTAY_BODY_*:
  1 MiB of JSON, 20 MiB of upload by default);
- transient MongoDB errors (TransientTransactionError label, WriteConflict 112) 409 "try
  again", an unreachable database 503; `retry_transient(fn)` retries them first;
- Starlette's own errors (unknown path, wrong method) and anything unexpected (500, no
  internals), in the same shape.

Every operation of the OpenAPI document lists the shared error responses with this shape.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic_settings import BaseSettings, SettingsConfigDict
from pymongo.errors import ConnectionFailure, PyMongoError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sotay_events import ConcurrencyConflict, EventTooLarge

T = TypeVar("T")


class ServiceError(Exception):
    """A refusal any layer may raise, domain included: answered as its `body()`.

    Its HTTP status comes from `STATUS` (by class); `status_code` is only for subclasses
    written before that table, and will go.
    """

    code = "bad_request"
    status_code: int | None = None

    def __init__(
        self,
        message: str,
        field: str | None = None,
        code: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.headers: dict[str, str] = {}
        if code:
            self.code = code
        if status_code:
            self.status_code = status_code

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, "field": self.field}


class Invalid(ServiceError):
    code = "invalid"


class NotFound(ServiceError):
    code = "not_found"


class Conflict(ServiceError):
    code = "conflict"


class Unauthorized(ServiceError):
    code = "unauthorized"


class Forbidden(ServiceError):
    code = "forbidden"


class TooManyRequests(ServiceError):
    code = "too_many_requests"

    def __init__(self, message: str, retry_after: int, field: str | None = None) -> None:
        super().__init__(message, field)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


class PayloadTooLarge(ServiceError):
    code = "too_large"


class UnsupportedMediaType(ServiceError):
    code = "unsupported_media_type"


class Malformed(ServiceError):
    """A request that cannot be read at all (not JSON, not UTF-8, too deep)."""

    code = "malformed"


class TryAgain(ServiceError):
    code = "try_again"


class Unavailable(ServiceError):
    code = "unavailable"


STATUS: dict[type[ServiceError], int] = {
    Malformed: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    TryAgain: 409,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    Invalid: 422,
    TooManyRequests: 429,
    Unavailable: 503,
}


def status_of(exc: ServiceError) -> int:
    if exc.status_code:
        return exc.status_code
    return next((STATUS[c] for c in type(exc).__mro__ if c in STATUS), 400)


def _answer(exc: ServiceError) -> JSONResponse:
    body = exc.body()
    body.setdefault("field", None)
    return JSONResponse(body, status_code=status_of(exc), headers=exc.headers or None)


# --- the database's transient refusals --------------------------------------------

WRITE_CONFLICT = 112


def is_transient(exc: BaseException) -> bool:
    """A MongoDB error that a retry of the whole command may not meet again."""
    if not isinstance(exc, PyMongoError):
        return False
    return (
        exc.has_error_label("TransientTransactionError")
        or exc.has_error_label("UnknownTransactionCommitResult")
        or getattr(exc, "code", None) == WRITE_CONFLICT
    )


async def retry_transient(fn: Callable[[], Awaitable[T]], attempts: int = 3) -> T:
    """Run `fn` again on a transient database error (it must be safe to retry)."""
    for attempt in range(attempts):
        try:
            return await fn()
        except PyMongoError as exc:
            if not is_transient(exc) or attempt == attempts - 1:
                raise
            await asyncio.sleep(0.02 * 2**attempt)
    raise AssertionError("unreachable")


TRY_AGAIN = "Dữ liệu đang được thay đổi đồng thời, vui lòng thử lại"


# --- request validation -------------------------------------------------------------

# Pydantic's own error types, in Vietnamese; the platform's types (sotay_*) already are.
_MESSAGES = {
    "missing": "Thiếu trường bắt buộc",
    "extra_forbidden": "Trường không được phép",
    "string_type": "Cần một chuỗi ký tự",
    "string_too_short": "Cần ít nhất {min_length} ký tự",
    "string_too_long": "Dài quá {max_length} ký tự",
    "string_pattern_mismatch": "Không đúng định dạng",
    "int_type": "Cần một số nguyên",
    "int_parsing": "Cần một số nguyên",
    "int_from_float": "Cần một số nguyên",
    "float_type": "Cần một số",
    "float_parsing": "Cần một số",
    "finite_number": "Cần một số hữu hạn",
    "bool_type": "Cần giá trị đúng/sai (true/false)",
    "bool_parsing": "Cần giá trị đúng/sai (true/false)",
    "greater_than": "Phải lớn hơn {gt}",
    "greater_than_equal": "Phải từ {ge} trở lên",
    "less_than": "Phải nhỏ hơn {lt}",
    "less_than_equal": "Không được quá {le}",
    "too_short": "Cần ít nhất {min_length} phần tử",
    "too_long": "Tối đa {max_length} phần tử",
    "list_type": "Cần một danh sách",
    "dict_type": "Cần một đối tượng JSON",
    "model_type": "Cần một đối tượng JSON",
    "model_attributes_type": "Cần một đối tượng JSON",
    "enum": "Giá trị không hợp lệ; chỉ nhận: {expected}",
    "literal_error": "Giá trị không hợp lệ; chỉ nhận: {expected}",
    "date_type": "Ngày không hợp lệ: cần dạng dd/mm/yyyy",
    "date_parsing": "Ngày không hợp lệ: cần dạng dd/mm/yyyy",
    "date_from_datetime_parsing": "Ngày không hợp lệ: cần dạng dd/mm/yyyy",
    "date_from_datetime_inexact": "Ngày không được có giờ",
    "datetime_type": "Thời điểm không hợp lệ: cần dạng ISO 8601",
    "datetime_parsing": "Thời điểm không hợp lệ: cần dạng ISO 8601",
    "datetime_from_date_parsing": "Thời điểm không hợp lệ: cần dạng ISO 8601",
    "timezone_aware": "Thời điểm cần có múi giờ",
    "uuid_parsing": "Mã không hợp lệ",
    "uuid_type": "Mã không hợp lệ",
    "url_parsing": "Địa chỉ không hợp lệ",
    "url_scheme": "Địa chỉ phải bắt đầu bằng http:// hoặc https://",
    "value_error": "Giá trị không hợp lệ",
}


def vietnamese(error: dict[str, Any]) -> str:
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    if kind.startswith("sotay_"):
        return str(error.get("msg"))
    if kind == "value_error" and ctx.get("error"):
        return str(ctx["error"])  # a service's own validator: its message is already for a person
    try:
        return _MESSAGES.get(kind, _MESSAGES["value_error"]).format(**ctx)
    except (KeyError, IndexError):
        return _MESSAGES["value_error"]


def _field_name(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or None


def _validation_answer(exc: RequestValidationError) -> ServiceError | dict[str, Any]:
    errors = list(exc.errors())
    for err in errors:
        loc = tuple(err.get("loc") or ())
        if err.get("type") == "json_invalid":
            return Malformed("Nội dung yêu cầu không phải JSON hợp lệ", code="malformed_json")
        if loc == ("body",) and isinstance(exc.body, bytes | bytearray):
            return UnsupportedMediaType(
                "Nội dung yêu cầu phải là JSON (Content-Type: application/json)"
            )
        if loc == ("body",) and err.get("type") == "missing":
            return Invalid("Thiếu nội dung yêu cầu (JSON)", code="body_missing")
    fields = [
        {
            "field": _field_name(tuple(err.get("loc") or ())),
            "message": vietnamese(err),
            "type": err.get("type"),
        }
        for err in errors
    ]
    first = fields[0] if fields else {"field": None, "message": _MESSAGES["value_error"]}
    where = f"Trường '{first['field']}': " if first["field"] else ""
    return {
        "error": "invalid",
        "message": f"{where}{first['message']}",
        "field": first["field"],
        "fields": fields,
    }


_HTTP_MESSAGES = {
    400: ("malformed", "Không đọc được nội dung yêu cầu"),
    401: ("unauthorized", "Cần đăng nhập"),
    403: ("forbidden", "Không có quyền thực hiện thao tác này"),
    404: ("not_found", "Không tìm thấy đường dẫn"),
    405: ("method_not_allowed", "Phương thức không được hỗ trợ ở đường dẫn này"),
    406: ("not_acceptable", "Không có định dạng trả lời phù hợp"),
    413: ("too_large", "Nội dung yêu cầu quá lớn"),
    415: ("unsupported_media_type", "Kiểu nội dung không được hỗ trợ"),
}


# --- the body guard ---------------------------------------------------------------


class BodyLimits(BaseSettings):
    """How big and how deep a request body may be (SOTAY_BODY_JSON_MAX_BYTES, ...)."""

    model_config = SettingsConfigDict(env_prefix="SOTAY_BODY_", extra="ignore")

    json_max_bytes: int = 1 << 20
    upload_max_bytes: int = 20 << 20
    json_max_depth: int = 64


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_too_deep(body: bytes, limit: int) -> bool:
    """Whether arrays and objects nest deeper than `limit` (strings do not count)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for byte in _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS):
        depth += 1 if byte in (0x5B, 0x7B) else -1
        if depth > limit:
            return True
    return False


def _mib(size: int) -> str:
    return f"{size / (1 << 20):g} MB"


class BodyGuard:
    """ASGI middleware: refuses a body over its limit (413) and a JSON body that is not
    UTF-8 or nests too deep (400), before the application reads it."""

    def __init__(self, app: ASGIApp, limits: BodyLimits | None = None) -> None:
        self.app = app
        self.limits = limits or BodyLimits()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers") or ()}
        content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
        is_json = content_type.split(";")[0].strip().endswith(("/json", "+json"))
        limit = (
            self.limits.upload_max_bytes
            if content_type.startswith(
                ("multipart/", "application/x-www-form-urlencoded", "application/octet-stream")
            )
            else self.limits.json_max_bytes
        )
        too_large = PayloadTooLarge(f"Nội dung yêu cầu lớn quá {_mib(limit)}", code="too_large")
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _answer(too_large)(scope, receive, send)
            return
        if not is_json:
            await self.app(scope, _counting(receive, limit, too_large), send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay(b"", receive, message), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _answer(too_large)(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        refusal = self._refusal(body)
        if refusal is not None:
            await _answer(refusal)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    def _refusal(self, body: bytes) -> ServiceError | None:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return Malformed("Nội dung yêu cầu phải mã hóa UTF-8", code="not_utf8")
        if json_too_deep(body, self.limits.json_max_depth):
            return Malformed(
                f"Nội dung JSON lồng nhau quá {self.limits.json_max_depth} cấp", code="too_deep"
            )
        return None


def _replay(body: bytes, receive: Receive, pending: Message | None = None) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent, pending
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if pending is not None:
            message, pending = pending, None
            return message
        return await receive()

    return replayed


class _BodyTooLarge(HTTPException):
    def __init__(self, error: ServiceError) -> None:
        super().__init__(413, error.message)
        self.error = error


def _counting(receive: Receive, limit: int, too_large: ServiceError) -> Receive:
    size = 0

    async def counted() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                # An HTTPException passes through FastAPI's body reading to the handlers.
                raise _BodyTooLarge(too_large)
        return message

    return counted


# --- installing ------------------------------------------------------------------------


def install_error_handlers(app: FastAPI, limits: BodyLimits | None = None) -> None:
    """The handlers, the body guard and the documented error responses, on `app`."""

    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return _answer(exc)

    @app.exception_handler(ConcurrencyConflict)
    async def _conflict(_: Request, exc: ConcurrencyConflict) -> JSONResponse:
        return _answer(
            Conflict(
                "Dữ liệu vừa được người khác thay đổi, vui lòng thử lại", code="concurrent_change"
            )
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        answer = _validation_answer(exc)
        if isinstance(answer, ServiceError):
            return _answer(answer)
        return JSONResponse(answer, status_code=422)

    @app.exception_handler(PyMongoError)
    async def _database(_: Request, exc: PyMongoError) -> JSONResponse:
        if is_transient(exc):
            error: ServiceError = TryAgain(TRY_AGAIN)
            error.headers = {"Retry-After": "1"}
            return _answer(error)
        if isinstance(exc, ConnectionFailure):
            return _answer(Unavailable("Hệ thống đang bận, vui lòng thử lại sau ít phút"))
        return _internal()

    @app.exception_handler(EventTooLarge)
    async def _too_large(_: Request, exc: EventTooLarge) -> JSONResponse:
        return _answer(
            Invalid(
                "Nội dung quá lớn để ghi nhận: hãy rút gọn hoặc chia thành nhiều phần",
                code="too_large",
            )
        )

    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    async def _cache(_: Request, exc: Exception) -> JSONResponse:
        # Redis holds no fact of its own: a moment without it is a retry, not a failure.
        error: ServiceError = Unavailable("Hệ thống đang bận, vui lòng thử lại sau ít giây")
        error.headers = {"Retry-After": "2"}
        return _answer(error)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc, _BodyTooLarge):
            return _answer(exc.error)
        code, message = _HTTP_MESSAGES.get(exc.status_code, ("error", "Yêu cầu không hợp lệ"))
        if exc.status_code >= 500:
            return _internal()
        return JSONResponse(
            {"error": code, "message": message, "field": None},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(UnicodeEncodeError)
    async def _unencodable(_: Request, exc: UnicodeEncodeError) -> JSONResponse:
        # A lone surrogate in a field not yet declared with a platform type.
        if exc.reason == "surrogates not allowed":
            return _answer(Invalid("Dữ liệu chứa ký tự Unicode không hợp lệ", code="invalid"))
        return _internal()

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return _internal()

    app.add_middleware(BodyGuard, limits=limits)
    document_error_responses(app)


def _internal() -> JSONResponse:
    return JSONResponse(
        {"error": "internal", "message": "Lỗi hệ thống, vui lòng thử lại sau", "field": None},
        status_code=500,
    )


ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error", "message", "field"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "field": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "fields": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                    "message": {"type": "string"},
                },
            },
        },
    },
}
_DOCUMENTED = {
    "400": "Yêu cầu không đọc được",
    "401": "Chưa đăng nhập",
    "403": "Không có quyền",
    "404": "Không tìm thấy",
    "409": "Xung đột dữ liệu",
    "413": "Nội dung quá lớn",
    "415": "Không phải JSON",
    "422": "Dữ liệu không hợp lệ",
    "429": "Quá nhiều yêu cầu",
    "503": "Tạm thời không phục vụ được",
}


def document_error_responses(app: FastAPI) -> None:
    """Every operation documents the shared error answers in their real shape (FastAPI's
    own 422 schema, `HTTPValidationError`, is not what a client gets)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                responses = operation["responses"]
                for status, description in _DOCUMENTED.items():
                    current = responses.get(status)
                    if current is None or "HTTPValidationError" in json.dumps(current):
                        responses[status] = {"description": description, "content": ref}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
