"""Schemathesis drives org-tree's whole OpenAPI: no 5xx, no answer the schema does not document."""

from fastapi import FastAPI

from sotay_platform.auth import Grant, Role, TokenIssuer
from sotay_platform.testing import fuzz_openapi


async def test_hostile_input_never_reaches_a_500(app: FastAPI, token_issuer: TokenIssuer) -> None:
    token = token_issuer.issue("fuzzer", [Grant(Role.system_admin, "TW")])
    sent = await fuzz_openapi(app, token=token, max_examples=15)
    assert sent > 0
