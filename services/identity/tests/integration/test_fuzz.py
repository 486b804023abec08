"""Schemathesis drives identity's whole OpenAPI: no 5xx, and every answer as documented."""

import pytest
from fastapi import FastAPI

from sotay_platform.testing import fuzz_openapi

from .conftest import World

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_the_openapi_holds_under_generated_input(app: FastAPI, module_world: World) -> None:
    token = module_world.admin["Authorization"].removeprefix("Bearer ")
    sent = await fuzz_openapi(app, token=token, max_examples=4)
    assert sent > 100


async def test_enums_are_documented(app: FastAPI) -> None:
    schema = app.openapi()["components"]["schemas"]
    assert schema["Gender"]["enum"] == ["male", "female", "other"]
    assert set(schema["MemberStatus"]["enum"]) == {"official", "probationary", "exempted"}
    assert set(schema["MemberOut"]["properties"]["state"]["enum"]) == {
        "pending",
        "approved",
        "rejected",
        "removed",
    }
