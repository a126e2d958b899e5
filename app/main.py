"""The application factory: ``uvicorn --factory app.main:create_app``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import Session, sessionmaker

from app import api_docs
from app.annotation import api as annotation_api
from app.annotation import views as annotation_views
from app.body_limit import BodyLimitMiddleware
from app.chat import views as chat_views
from app.config import Settings
from app.dashboard import api as dashboard_api
from app.dashboard import job_views as dashboard_job_views
from app.dashboard import views as dashboard_views
from app.db import make_engine, make_sessionmaker
from app.export import views as export_views
from app.finetune.core import api as rewards_api
from app.http_errors import install_error_handlers
from app.importing import views as import_views
from app.importing.views import UPLOAD_BODY_LIMIT as PREFERENCE_UPLOAD_LIMIT
from app.instruct import api as instruct_api
from app.instruct import views as instruct_views
from app.jobs import api as jobs_api
from app.openapi import install_openapi
from app.pool import api as pool_api
from app.pool import views as pool_views
from app.prompts import api as prompts_api
from app.prompts import views as prompts_views
from app.prompts.importers import UPLOAD_BODY_LIMIT as PROMPT_UPLOAD_LIMIT
from app.security_headers import SecurityHeadersMiddleware
from app.system import router as system_router
from app.users import api as users_api
from app.users import login_views as auth_views
from app.users import views as users_views
from app.versions import api as registry_api
from app.versions import views as registry_views
from app.web import STATIC_DIR, make_templates

# Routes whose bodies may pass the global limit (RLHF_MAX_BODY_BYTES), each with its own cap, enforced
# while the body is read, before sign-in is checked. Keep in step with the routes' ``max_body_size``.
POOL_OVERFLOW = 10  # connections past the pool for handlers beyond the threadpool (async routes, streams)
PROMPT_BODY_LIMIT = prompts_views.LONG_FORM["max_part_size"] + 1024 * 1024  # a 50-turn conversation
BODY_LIMIT_OVERRIDES = [
    (r"/(api/v1|admin)/prompt-sets/\d+/import/?", PROMPT_UPLOAD_LIMIT),
    (r"/admin/import/?", PREFERENCE_UPLOAD_LIMIT),
    (r"/(api/v1|admin)/prompt-sets/\d+/prompts(/\d+)?/?", PROMPT_BODY_LIMIT),
]


def create_app(settings: Settings | None = None, *, session_factory: sessionmaker[Session] | None = None) -> FastAPI:
    """Build the app. Tests pass a session factory bound to their transaction; otherwise the
    engine is made from the settings and disposed at shutdown."""
    settings = settings or Settings()
    settings.ensure_secret_key()  # refuse a placeholder secret before serving anything
    engine = None
    if session_factory is None:
        engine = make_engine(
            settings.resolved_database_url, pool_size=settings.database_pool_size, max_overflow=POOL_OVERFLOW
        )
        session_factory = make_sessionmaker(engine)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if engine is not None:
            engine.dispose()

    app = FastAPI(
        title="RLHF Loop",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's Swagger UI needs a CDN and inline script; ours is app/api_docs.py
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
    )
    app.state.settings = settings
    app.state.sessionmaker = session_factory
    app.state.templates = make_templates()
    # Added first, so it runs inside the security headers (its 413 gets them) and before routing.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, overrides=BODY_LIMIT_OVERRIDES)
    app.add_middleware(SecurityHeadersMiddleware)
    install_error_handlers(app)
    install_openapi(app)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    routers = [
        annotation_api.router,  # first: the hottest routes are matched before any other router is tried
        annotation_api.gold_router,
        system_router,
        api_docs.router,
        auth_views.router,
        users_views.admin,
        users_views.account,
        users_api.me_router,
        users_api.admin_router,
        jobs_api.router,
        annotation_views.router,
        chat_views.router,
        prompts_views.router,
        prompts_api.read_router,
        prompts_api.admin_router,
        instruct_views.router,
        instruct_api.read_router,
        instruct_api.admin_router,
        registry_views.router,
        registry_api.router,
        registry_api.serving_router,
        rewards_api.reward_router,
        rewards_api.classifier_router,
        pool_views.router,
        pool_api.router,
        dashboard_views.router,
        dashboard_api.router,
        dashboard_job_views.router,
        export_views.router,
        import_views.router,
    ]
    for router in routers:
        app.include_router(router)
    return app
