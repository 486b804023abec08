"""The domain's refusals: a Vietnamese message, the field at fault, an HTTP status."""

from __future__ import annotations

from sotay_platform.errors import ServiceError


class RuleBroken(ServiceError):
    """A command the rules refuse. 422 by default; 409 when the state forbids it now."""

    status_code = 422
    code = "rule_broken"


def conflict(message: str, field: str | None = None, code: str = "conflict") -> RuleBroken:
    return RuleBroken(message, field, code, status_code=409)
