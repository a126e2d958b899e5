"""The pool page for researchers and admins: how full the pool is, per version, and the pending
pairs themselves (model output is untrusted: rendered as escaped text, never as HTML)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from app.auth.policy import Access, allow
from app.deps import DbDep, SettingsDep
from app.pool import service
from app.registry import service as registry
from app.web import redirect, render

router = APIRouter(prefix="/pool", tags=["pool pages"], dependencies=[allow(Access.researcher)])

FormToken = Annotated[str, Form(max_length=200)]


@router.get("", name="pool")
def pool_page(request: Request, db: DbDep, settings: SettingsDep, page: int = 1, queued: bool = False) -> Response:
    page = max(page, 1)
    pairs, total = service.list_pending(db, limit=service.PAGE_SIZE, offset=(page - 1) * service.PAGE_SIZE)
    promoted = registry.promoted_policy(db)
    ctx = {
        "pairs": pairs, "total": total, "page": page,
        "pages": max((total + service.PAGE_SIZE - 1) // service.PAGE_SIZE, 1),
        "counts": service.pool_counts(db), "promoted": promoted, "target": settings.pool_target,
        "promoted_pending": service.pending_count(db, version_id=promoted.id) if promoted else 0,
        "job": service.generation_job(db), "queued": queued,
    }  # fmt: skip
    return render(request, "pool/pending.html", ctx)


@router.post("/generate", name="pool_generate")
def pool_generate(db: DbDep, settings: SettingsDep, csrf_token: FormToken = "") -> Response:
    """Ask for a batch of pairs now (beyond the target), unless a generate job is on its way."""
    job = service.ensure_generating(db, settings, min_pairs=settings.pool_batch_prompts, reason="manual")
    db.commit()
    return redirect(f"/pool?queued={1 if job else 0}")
