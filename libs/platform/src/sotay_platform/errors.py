"""One error shape for every service: a Vietnamese message and the field at fault."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from sotay_events import ConcurrencyConflict


class ServiceError(Exception):
    """A refusal any layer may raise, domain included: answered as its `body()` with its status.

    Services subclass it for their own rules; the shared handler answers them all.
    """

    status_code = 400
    code = "bad_request"

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
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        return body


class Invalid(ServiceError):
    status_code = 422
    code = "invalid"


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"


class Unauthorized(ServiceError):
    status_code = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or ".".join(str(p) for p in loc)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(ConcurrencyConflict)
    async def _conflict(_: Request, exc: ConcurrencyConflict) -> JSONResponse:
        return JSONResponse(
            {
                "error": "concurrent_change",
                "message": "Dữ liệu vừa được người khác thay đổi, vui lòng thử lại",
            },
            status_code=409,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {"field": _field_name(tuple(err["loc"])), "message": err["msg"], "type": err["type"]}
            for err in exc.errors()
        ]
        first = fields[0]["field"] if fields else None
        return JSONResponse(
            {
                "error": "invalid",
                "message": f"Dữ liệu không hợp lệ ở trường '{first}'",
                "field": first,
                "fields": fields,
            },
            status_code=422,
        )
