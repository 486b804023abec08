"""Who may do what to a piece, and which pieces a caller sees: rules without I/O.

Grants come in the access token (identity issues them): a role and the unit
whose subtree it covers. A member's own branch is the unit of their `member`
grant. An editor drafts for the units their grant covers; an editorial-board
reviewer of the same subtree approves, returns, corrects and withdraws.
"""

from __future__ import annotations

from collections.abc import Iterable

from sotay_platform.auth import Principal, Role

EDITOR = Role.editor
EDITORIAL_REVIEWER = Role.editorial_reviewer

EDITOR_ROLES = frozenset({EDITOR})
REVIEWER_ROLES = frozenset({EDITORIAL_REVIEWER})
# Who works on drafts and the queue: the board, and the platform's operators.
BOARD_ROLES = EDITOR_ROLES | REVIEWER_ROLES | {Role.system_admin}


def member_branch(principal: Principal) -> str | None:
    """The branch a member belongs to, as their token says."""
    return next((g.unit_id for g in principal.grants if g.role is Role.member), None)


def grant_units(principal: Principal, roles: Iterable[Role] | None = None) -> list[str]:
    wanted = set(roles) if roles is not None else None
    return list(
        dict.fromkeys(g.unit_id for g in principal.grants if wanted is None or g.role in wanted)
    )


def manages(principal: Principal, piece_path: Iterable[str]) -> bool:
    """Board members and admins whose grant sits on the piece's unit path see it in any state."""
    return principal.covers(BOARD_ROLES, list(piece_path))


def sees_published(
    principal: Principal,
    target_unit: str,
    visible_targets: Iterable[str],
    piece_path: Iterable[str],
) -> bool:
    """A published piece is seen by the subtree of the unit it targets.

    `visible_targets` are the units above the caller's own units (their paths,
    with the units merged into them); `piece_path` is the target's own path,
    for callers whose grant covers the target from above (a province office).
    """
    if target_unit in set(visible_targets):
        return True
    return any(g.unit_id in set(piece_path) for g in principal.grants) or principal.covers(
        [Role.system_admin], []
    )
