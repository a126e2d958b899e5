"""Home page and health check."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from app.auth.policy import Access, allow
from app.deps import DbDep
from app.web import render

router = APIRouter(tags=["system"])


@router.get("/healthz", name="healthz", dependencies=[allow(Access.public)])
def healthz(db: DbDep) -> Response:
    try:
        db.execute(text("SELECT 1"))
    except Exception as exc:
        return JSONResponse(
            {"status": "unavailable", "database": f"unreachable: {type(exc).__name__}"}, status_code=503
        )
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get("/", name="home", dependencies=[allow(Access.annotator)])
def home(request: Request) -> Response:
    return render(request, "home.html")
