"""The ``import`` job kind: a preference dataset uploaded by an admin, imported in the background.

The upload is saved under ``<data_dir>/imports/`` with a random name, and the job names only
that file (never a path): whoever can create jobs can import nothing but what an admin uploaded.
The import is one transaction (``ctx.transaction()``), committed only while the job is still
ours; a rejected file fails the job with every bad line listed, and writes nothing.
"""

from __future__ import annotations

import re
import secrets
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, BinaryIO, Literal

from pydantic import BaseModel, Field

from app.auth.models import Role
from app.config import Settings
from app.errors import Invalid
from app.importing.parsers import GZIP_MAGIC
from app.importing.service import import_preferences
from app.jobs.context import JobContext
from app.jobs.exceptions import JobFailed
from app.jobs.registry import register
from app.lanes import Lane

UPLOAD_NAME = r"^[0-9a-f]{32}\.jsonl(\.gz)?$"
MAX_IMPORT_BYTES = 4 * 1024**3  # decompressed; the full HH-RLHF train split is about 0.5 GB


class ImportParams(BaseModel):
    upload: str = Field(..., pattern=UPLOAD_NAME, description="The uploaded file's name in the imports folder.")
    format: Literal["trl", "hh"] = Field(
        "hh", description="TRL preference JSONL (plain or conversational) or HH-RLHF JSONL."
    )
    name: str = Field(
        ..., min_length=1, max_length=55, description="Source name: judgements come from 'external:<name>'."
    )
    set_name: str | None = Field(
        None, max_length=200, description="Prompt set to import into; default 'external:<name>'."
    )


def imports_dir(settings: Settings) -> Path:
    return settings.data_dir / "imports"


def save_upload(settings: Settings, stream: BinaryIO) -> str:
    """Copy an uploaded file into the imports folder under a random name; returns that name."""
    head = stream.read(2)
    stream.seek(0)
    name = secrets.token_hex(16) + (".jsonl.gz" if head == GZIP_MAGIC else ".jsonl")
    folder = imports_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / name).open("wb") as out:
        shutil.copyfileobj(stream, out, length=1024 * 1024)
    return name


# Admins only: it writes judgements in bulk.
@register("import", ImportParams, offered_in_ui=False, audience=Role.admin, lane=Lane.short)
def import_job(ctx: JobContext[ImportParams]) -> dict[str, Any]:
    """Import the upload in one transaction, then delete it (kept on failure, for a retry)."""
    path = imports_dir(ctx.settings) / ctx.params.upload
    if not re.match(UPLOAD_NAME, path.name) or not path.is_file():
        raise JobFailed(f"the uploaded file {ctx.params.upload} is not in the imports folder")
    ctx.reporter.progress(0.0, f"importing {path.stat().st_size:,} bytes")
    try:
        with ctx.transaction() as db, path.open("rb") as stream:
            # On SQLite this transaction holds the write lock, so progress is reported only after it.
            report = import_preferences(
                db,
                stream=stream,
                fmt=ctx.params.format,
                name=ctx.params.name,
                set_name=ctx.params.set_name,
                max_bytes=MAX_IMPORT_BYTES,
                commit=False,
            )
    except Invalid as exc:
        raise JobFailed(exc.message) from None
    path.unlink(missing_ok=True)
    ctx.reporter.log(str(report))
    ctx.reporter.progress(1.0, str(report))
    return asdict(report)
