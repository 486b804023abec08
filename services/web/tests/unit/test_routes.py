"""Every form the front accepts is CSRF-checked; no route puts a token in a URL."""

from __future__ import annotations

from fastapi.routing import APIRoute

from sotay_web import auth, console, member, reading, secretary, study
from sotay_web.core import checked_form
from sotay_web.main import CSP

ROUTES = [
    r
    for module in (auth, member, study, reading, secretary, console)
    for r in module.router.routes
    if isinstance(r, APIRoute)
]


def _dependencies(route: APIRoute) -> set[object]:
    found: set[object] = set()
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        found.add(dep.call)
        stack.extend(dep.dependencies)
    return found


def test_every_post_checks_the_csrf_token() -> None:
    posts = [r for r in ROUTES if "POST" in r.methods]
    assert len(posts) > 10
    unchecked = [r.path for r in posts if checked_form not in _dependencies(r)]
    assert unchecked == []


def test_no_route_takes_a_token_parameter() -> None:
    names = {p.name for r in ROUTES for p in r.dependant.query_params + r.dependant.path_params}
    assert not {n for n in names if "token" in n}


def test_content_security_policy_allows_no_inline_script() -> None:
    script = next(part for part in CSP.split(";") if part.strip().startswith("script-src"))
    assert script.strip() == "script-src 'self'"
    assert "frame-ancestors 'none'" in CSP
