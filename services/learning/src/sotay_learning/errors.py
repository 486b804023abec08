"""The domain's refusals: a Vietnamese message, the field at fault, an HTTP status."""

from __future__ import annotations


class RuleBroken(Exception):
    """A command the rules refuse. 422 by default; 409 when the state forbids it now."""

    def __init__(
        self,
        message: str,
        field: str | None = None,
        code: str = "rule_broken",
        status_code: int = 422,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code
        self.status_code = status_code

    def body(self) -> dict[str, str]:
        body = {"error": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        return body


def conflict(message: str, field: str | None = None, code: str = "conflict") -> RuleBroken:
    return RuleBroken(message, field, code, status_code=409)
