"""The domain's refusals: a Vietnamese message and the field at fault, no HTTP status.

They are the platform's refusal types (`sotay_platform.errors`), whose table maps each
class to its status: a rule broken by the input is `RuleBroken` (an `Invalid`, 422), a
state that forbids the command now is `RuleConflict` (a `Conflict`, 409).
"""

from __future__ import annotations

from sotay_platform.errors import Conflict, Invalid


class RuleBroken(Invalid):
    """A command the rules refuse, whatever the state."""

    code = "rule_broken"


class RuleConflict(Conflict):
    """A command the current state refuses (already submitted, no turn left, closed)."""

    code = "conflict"


def conflict(message: str, field: str | None = None, code: str = "conflict") -> RuleConflict:
    return RuleConflict(message, field, code)
