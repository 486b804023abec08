"""Schemathesis drives feedback's whole OpenAPI: no 5xx, no answer the schema does not document."""

import pytest
from fastapi import FastAPI

from sotay_platform.auth import Grant, Role, TokenIssuer
from sotay_platform.testing import fuzz_openapi


@pytest.mark.asyncio(loop_scope="module")
async def test_hostile_input_never_reaches_a_500(app: FastAPI, token_issuer: TokenIssuer) -> None:
    token = token_issuer.issue("fuzzer", [Grant(Role.system_admin, "TW")], member_id="fuzzer")
    assert await fuzz_openapi(app, token=token, max_examples=4) > 0
