"""One error shape for every refusal, on a small app carrying the shared handlers."""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, File, UploadFile
from pydantic import BaseModel
from pymongo.errors import AutoReconnect, OperationFailure

from sotay_events import ConcurrencyConflict
from sotay_platform.errors import (
    BodyLimits,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    ServiceError,
    TooManyRequests,
    Unauthorized,
    install_error_handlers,
    json_too_deep,
    retry_transient,
    status_of,
)
from sotay_platform.inputs import EventDatetime, Line, Offset


class Body(BaseModel):
    title: Line
    starts_at: EventDatetime
    tags: list[Any] = []


class Legacy(ServiceError):
    status_code = 423
    code = "locked"


def make_app() -> FastAPI:  # cheap: one per test
    app = FastAPI()
    install_error_handlers(app, BodyLimits(json_max_bytes=10_000, upload_max_bytes=50_000))

    @app.post("/things")
    async def create(body: Body) -> dict[str, Any]:
        return {"title": body.title, "starts_at": body.starts_at.isoformat()}

    @app.get("/things")
    async def things(offset: Offset = 0) -> dict[str, int]:
        return {"offset": offset}

    @app.post("/upload")
    async def upload(file: Annotated[UploadFile, File()]) -> dict[str, int]:
        return {"size": len(await file.read())}

    @app.get("/raise/{what}")
    async def fail(what: str) -> None:
        errors: dict[str, Exception] = {
            "transient": OperationFailure(
                "WriteConflict", 112, {"errorLabels": ["TransientTransactionError"]}
            ),
            "write_conflict": OperationFailure("WriteConflict", 112),
            "down": AutoReconnect("connection refused"),
            "other_db": OperationFailure("bad", 2),
            "bug": RuntimeError("secret internals /etc/passwd"),
            "legacy": Legacy("Tài khoản tạm khóa"),
            "legacy_instance": Invalid("Đã có", code="taken", status_code=409),
            "limited": TooManyRequests("Thử lại sau", retry_after=30),
            "concurrency": ConcurrencyConflict("stream", 3),
            "surrogate": UnicodeEncodeError("utf-8", "a\ud800", 1, 2, "surrogates not allowed"),
        }
        raise errors[what]

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


def shape(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) >= {"error", "message", "field"}, body
    assert "detail" not in body
    return body


OK = {"title": "Sinh hoạt chi bộ", "starts_at": "2026-12-03T19:30:00+07:00"}


async def test_a_valid_body_passes_the_guard(client: httpx.AsyncClient) -> None:
    r = await client.post("/things", json=OK)
    assert r.status_code == 200
    assert r.json()["starts_at"] == "2026-12-03T12:30:00+00:00"


async def test_malformed_json_names_no_character_position(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/things", content=b'{"title": "a",,}', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert shape(r) == {
        "error": "malformed_json",
        "message": "Nội dung yêu cầu không phải JSON hợp lệ",
        "field": None,
    }


async def test_a_body_not_in_utf8_is_refused(client: httpx.AsyncClient) -> None:
    raw = unicodedata.normalize("NFD", '{"title": "Hà Tĩnh"}').encode("cp1258")
    r = await client.post("/things", content=raw, headers={"content-type": "application/json"})
    assert (r.status_code, shape(r)["error"], r.json()["field"]) == (400, "not_utf8", None)


async def test_a_body_nested_too_deep_is_refused(client: httpx.AsyncClient) -> None:
    deep = b'{"title":"a","starts_at":"2026-12-03T19:30:00","tags":' + b"[" * 65 + b"]" * 65 + b"}"
    r = await client.post("/things", content=deep, headers={"content-type": "application/json"})
    assert (r.status_code, shape(r)["error"]) == (400, "too_deep")
    # Brackets inside strings are text, not depth.
    text = {**OK, "title": "[" * 200}
    assert (await client.post("/things", json=text)).status_code == 200
    assert json_too_deep(b'["' + b"[" * 100 + b'"]', 64) is False
    assert json_too_deep(b"[" * 64 + b"]" * 64, 64) is False


async def test_a_recursion_bomb_is_not_a_500(client: httpx.AsyncClient) -> None:
    bomb = b"[" * 5000
    r = await client.post("/things", content=bomb, headers={"content-type": "application/json"})
    assert r.status_code == 400 and shape(r)["field"] is None


async def test_wrong_content_type_and_empty_body(client: httpx.AsyncClient) -> None:
    r = await client.post("/things", content=b"title=a", headers={"content-type": "text/plain"})
    assert (r.status_code, shape(r)["error"]) == (415, "unsupported_media_type")
    r = await client.post("/things")
    assert (r.status_code, shape(r)["error"], r.json()["field"]) == (422, "body_missing", None)


async def test_validation_names_the_field_in_vietnamese(client: httpx.AsyncClient) -> None:
    r = await client.post("/things", json={**OK, "starts_at": "9999-12-31T23:00:00-05:00"})
    body = shape(r)
    assert (r.status_code, body["field"]) == (422, "starts_at")
    assert "2000" in body["message"] and "2100" in body["message"]
    r = await client.post("/things", json={"starts_at": OK["starts_at"]})
    assert shape(r)["field"] == "title" and "Thiếu trường bắt buộc" in r.json()["message"]
    r = await client.get("/things", params={"offset": str(10**30)})
    assert (r.status_code, shape(r)["field"]) == (422, "offset")
    assert "Không được quá 1000000" in r.json()["message"]


async def test_lone_surrogate_is_a_422_naming_the_field(client: httpx.AsyncClient) -> None:
    raw = b'{"title": "ab\\ud800cd", "starts_at": "2026-12-03T19:30:00"}'
    r = await client.post("/things", content=raw, headers={"content-type": "application/json"})
    assert (r.status_code, shape(r)["field"]) == (422, "title")


async def test_bodies_over_the_limit_are_413(client: httpx.AsyncClient) -> None:
    big = {**OK, "tags": ["x" * 100] * 200}
    r = await client.post("/things", json=big)
    assert (r.status_code, shape(r)["error"]) == (413, "too_large")
    assert "MB" in r.json()["message"]
    small = await client.post("/upload", files={"file": ("a.csv", b"x" * 20_000)})
    assert small.status_code == 200  # uploads have the larger limit
    r = await client.post("/upload", files={"file": ("a.csv", b"x" * 60_000)})
    assert (r.status_code, shape(r)["error"]) == (413, "too_large")


async def test_a_chunked_upload_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\n'
        for _ in range(10):
            yield b"x" * 10_000
        yield b"\r\n--b--\r\n"

    r = await client.post(
        "/upload", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert (r.status_code, shape(r)["error"]) == (413, "too_large")


@pytest.mark.parametrize(
    ("what", "status", "error"),
    [
        ("transient", 409, "try_again"),
        ("write_conflict", 409, "try_again"),
        ("down", 503, "unavailable"),
        ("other_db", 500, "internal"),
        ("bug", 500, "internal"),
        ("legacy", 423, "locked"),
        ("legacy_instance", 409, "taken"),
        ("limited", 429, "too_many_requests"),
        ("concurrency", 409, "concurrent_change"),
        ("surrogate", 422, "invalid"),
    ],
)
async def test_exceptions_answer_in_the_shape(
    client: httpx.AsyncClient, what: str, status: int, error: str
) -> None:
    r = await client.get(f"/raise/{what}")
    body = shape(r)
    assert (r.status_code, body["error"]) == (status, error)
    assert "passwd" not in r.text and "WriteConflict" not in r.text
    if what == "limited":
        assert r.headers["retry-after"] == "30"


async def test_starlette_errors_answer_in_the_shape(client: httpx.AsyncClient) -> None:
    r = await client.get("/nowhere")
    assert (r.status_code, shape(r)["error"]) == (404, "not_found")
    r = await client.delete("/things")
    assert (r.status_code, shape(r)["error"]) == (405, "method_not_allowed")


def test_domain_errors_carry_no_status_the_table_does() -> None:
    assert [
        status_of(e)
        for e in (
            Invalid("x"),
            NotFound("x"),
            Conflict("x"),
            Forbidden("x"),
            Unauthorized("x"),
            ServiceError("x"),
        )
    ] == [422, 404, 409, 403, 401, 400]
    assert Invalid("x").status_code is None

    class Mine(NotFound):
        pass

    assert status_of(Mine("x")) == 404
    assert Invalid("x", "f").body() == {"error": "invalid", "message": "x", "field": "f"}


async def test_openapi_documents_the_error_shape(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    responses = schema["paths"]["/things"]["post"]["responses"]
    assert responses["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert {"400", "413", "415", "429"} <= set(responses)
    assert "HTTPValidationError" not in str(schema["paths"])


async def test_retry_transient_retries_only_transient_errors() -> None:
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OperationFailure("WriteConflict", 112)
        return "ok"

    assert await retry_transient(flaky) == "ok" and len(calls) == 3

    async def broken() -> str:
        calls.append(1)
        raise OperationFailure("bad", 2)

    calls.clear()
    with pytest.raises(OperationFailure):
        await retry_transient(broken)
    assert len(calls) == 1
