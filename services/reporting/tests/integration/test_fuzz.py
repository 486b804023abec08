"""Hostile input against reporting's OpenAPI: never a 5xx, never an undocumented answer."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from sotay_platform.auth import Role
from sotay_platform.testing import fuzz_openapi

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(
    app: FastAPI, bearer: Any
) -> None:
    token = bearer(Role.system_admin, "TW")["Authorization"][7:]
    sent = await fuzz_openapi(app, token=token, max_examples=5)
    assert sent > 30
