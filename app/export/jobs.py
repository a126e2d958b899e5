"""The ``export`` job kind: a large export written to the data folder, with its snapshot.

Launched from the export page or by a program through ``/api/v1/jobs``; the file is
downloaded from ``/admin/export/jobs/<id>/download``. Re-running after a crash writes the
export again from scratch (the half-written file of the crashed attempt was never renamed
into place).
"""

from __future__ import annotations

from typing import Any

from app.auth.models import Role
from app.export.filters import ExportParams
from app.export.service import count_source, export_to_folder, exports_dir
from app.jobs.context import JobContext
from app.jobs.registry import register
from app.lanes import Lane


# Researchers may export: they train on the data, see per-annotator figures, and the pages agree (issue 17).
@register("export", ExportParams, offered_in_ui=False, audience=Role.researcher, lane=Lane.short)
def export_job(ctx: JobContext[ExportParams]) -> dict[str, Any]:
    """Stream the rows into a file; progress is reported between chunks (no transaction is open then)."""
    folder = exports_dir(ctx.settings) / str(ctx.job_id)
    with ctx.sessions() as db:
        total = count_source(db, ctx.params)
        ctx.reporter.progress(0.0, f"exporting {total:,} {ctx.params.format.source}")

        def on_chunk(read: int) -> None:
            ctx.reporter.progress(min(read / total, 0.99) if total else 0.0, f"{read:,} of {total:,} read")

        result = export_to_folder(db, ctx.params, folder, on_chunk=on_chunk)
    rows = result["snapshot"]["counts"]["rows"]
    ctx.reporter.log(
        f"wrote {rows:,} rows to {result['file']} ({result['bytes']:,} bytes); "
        f"snapshot {result['snapshot']['sha256'][:12]}"
    )
    ctx.reporter.progress(1.0, f"{rows:,} rows written")
    return result
