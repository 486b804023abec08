"""The bootstrap: the one place that wires content together."""

from __future__ import annotations

from fastapi import FastAPI

from sotay_content import api
from sotay_content.audience import Audience
from sotay_content.files import AttachmentFiles
from sotay_content.handlers import ContentService, utc_now
from sotay_content.projections import ContentProjection, ContentViews
from sotay_content.scheduler import Scheduler
from sotay_content.settings import ContentSettings
from sotay_events import GroupCommit, topics
from sotay_platform.attachments import MB, AttachmentKind, AttachmentLimits
from sotay_platform.org_units import OrgUnitsProjection
from sotay_platform.org_units import create_indexes as create_tree_indexes
from sotay_platform.runtime import ServiceRuntime
from sotay_platform.settings import AuthSettings


def create_app(
    settings: ContentSettings | None = None, auth: AuthSettings | None = None
) -> FastAPI:
    settings = settings or ContentSettings()
    runtime = ServiceRuntime(settings, auth)
    runtime.add_projection(OrgUnitsProjection(), [topics.ORG_TREE])
    views_runner = runtime.add_projection(ContentProjection(), [topics.CONTENT])

    views = ContentViews(runtime.db)
    files = AttachmentFiles(runtime.db)
    documents, images = int(settings.max_document_mb * MB), int(settings.max_image_mb * MB)
    service = ContentService(
        runtime.store,
        tree=Audience(runtime.db),
        readings=GroupCommit(runtime.store, max_batch=settings.readings_batch_max),
        clock=utc_now,
        limits=AttachmentLimits(
            max_bytes={
                AttachmentKind.pdf: documents,
                AttachmentKind.docx: documents,
                AttachmentKind.png: images,
                AttachmentKind.jpeg: images,
            },
            max_pdf_pages=settings.max_pdf_pages,
        ),
        on_saved=runtime.relay.wake,
    )
    scheduler = Scheduler(
        runtime.db,
        service.publish_due,
        lambda: service.clock(),
        interval_seconds=settings.scheduler_interval_seconds,
        lease_timeout=settings.scheduler_lease_timeout_seconds,
    )

    async def create_indexes() -> None:
        await create_tree_indexes(runtime.db)
        await views.create_indexes()
        await files.create_indexes()
        await scheduler.create_indexes()

    runtime.startup_hooks.append(create_indexes)
    runtime.workers.append(("content-scheduler", scheduler.run))

    app = FastAPI(
        title="Sổ tay — content",
        description=(
            "Tin tức, sự kiện và văn bản của Đảng: soạn, duyệt, đăng theo cây tổ chức, "
            "tìm kiếm tiếng Việt, thư viện cá nhân của đảng viên."
        ),
        lifespan=runtime.lifespan,
    )
    runtime.install(app)
    app.state.service = service
    app.state.views = views
    app.state.views_runner = views_runner
    app.state.files = files
    app.state.scheduler = scheduler
    app.include_router(api.router)
    return app
