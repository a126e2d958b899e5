"""Home page (the loop as a guide), health check and the favicon."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from sqlalchemy import text

from app.annotation import assignment as assignments
from app.auth.models import Role
from app.auth.policy import Access, CurrentUser, allow
from app.dashboard.loop import loop_status
from app.deps import DbDep
from app.web import STATIC_DIR, render

router = APIRouter(tags=["system"])


@router.get("/healthz", name="healthz", dependencies=[allow(Access.public)])
def healthz(db: DbDep) -> Response:
    """Liveness and database reachability, for load balancers and monitors (no sign-in; 503 when down)."""
    try:
        db.execute(text("SELECT 1"))
    except Exception as exc:
        return JSONResponse(
            {"status": "unavailable", "database": f"unreachable: {type(exc).__name__}"}, status_code=503
        )
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get("/", name="home", dependencies=[allow(Access.annotator)])
def home(request: Request, db: DbDep, user: CurrentUser) -> Response:
    """Annotators land on their queue and progress; researchers and admins on where the loop stands and
    the one step that moves it on."""
    context: dict[str, object] = {"progress": assignments.progress(db, user=user)}
    if user.role.rank >= Role.researcher.rank:
        context["loop"] = loop_status(db)
    return render(request, "home.html", context)


@router.get("/favicon.ico", name="favicon", include_in_schema=False, dependencies=[allow(Access.public)])
def favicon() -> Response:
    """Browsers and tools ask for /favicon.ico whatever the page links; the one icon is an SVG."""
    return FileResponse(
        STATIC_DIR / "favicon.svg", media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"}
    )
