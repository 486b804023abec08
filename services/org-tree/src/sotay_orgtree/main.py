"""The bootstrap: the one place that wires org-tree together."""

from __future__ import annotations

from fastapi import FastAPI

from sotay_events import topics
from sotay_orgtree import api
from sotay_orgtree.handlers import OrgTreeService
from sotay_orgtree.settings import OrgTreeSettings
from sotay_platform.org_units import OrgUnits, OrgUnitsProjection, create_indexes
from sotay_platform.runtime import ServiceRuntime
from sotay_platform.settings import AuthSettings


def create_app(
    settings: OrgTreeSettings | None = None, auth: AuthSettings | None = None
) -> FastAPI:
    settings = settings or OrgTreeSettings()
    runtime = ServiceRuntime(settings, auth)
    runtime.add_projection(OrgUnitsProjection(), [topics.ORG_TREE])
    runtime.startup_hooks.append(lambda: create_indexes(runtime.db))

    app = FastAPI(
        title="Sổ tay — org-tree",
        description="Cây tổ chức đảng: tạo, đổi tên, chuyển, hợp nhất, giải thể, nhập danh mục.",
        lifespan=runtime.lifespan,
    )
    runtime.install(app)
    app.state.service = OrgTreeService(runtime.store)
    app.state.tree = OrgUnits(runtime.db)
    app.include_router(api.router)

    return app
