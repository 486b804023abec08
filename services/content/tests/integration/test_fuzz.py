"""Schemathesis drives every operation of content's OpenAPI: no 5xx, nothing undocumented."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from sotay_content.access import EDITOR
from sotay_platform.auth import Grant, Role, TokenIssuer
from sotay_platform.testing import fuzz_openapi

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_hostile_and_careless_requests_never_get_a_5xx_or_an_undocumented_answer(
    app: FastAPI, token_issuer: TokenIssuer
) -> None:
    # An editor who is also a member: both kinds of routes get past authorization.
    token = token_issuer.issue(
        "fuzzer", [Grant(EDITOR, "TW"), Grant(Role.member, "CB1")], member_id="fuzzer"
    )
    sent = await fuzz_openapi(app, token=token, max_examples=1)
    assert sent > 20
