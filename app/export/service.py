"""Exports: rows → records → a file (jobs, CLI) or an HTTP stream (downloads), with a snapshot.

Every path goes through ``records``, so a download, a job and ``rlhf export`` of the same
parameters write the same bytes. A file export is written under a temporary name and renamed
into place when complete, so a crashed job never leaves a half file that looks finished.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import utcnow
from app.errors import Invalid, NotFound
from app.export import query
from app.export import records as rec
from app.export.elo import response_elo
from app.export.filters import ExportFormat, ExportParams
from app.export.snapshot import IDS_SUFFIX, SNAPSHOT_SUFFIX, SnapshotBuilder, write_snapshot
from app.export.writers import text_chunks, write_file
from app.jobs.models import Job, JobStatus
from app.lookup import get_or_404

SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,120}$")


def exports_dir(settings: Settings) -> Path:
    return settings.data_dir / "exports"


def file_name(fmt: ExportFormat, now: datetime | None = None) -> str:
    """A download name made only of safe characters: never anything a user typed."""
    stamp = (now or utcnow()).strftime("%Y%m%d-%H%M%S")
    return f"rlhf-{fmt.value.replace('_', '-')}-{stamp}{fmt.suffix}"


def records(
    db: Session,
    params: ExportParams,
    snapshot: SnapshotBuilder,
    tally: query.Tally,
    *,
    on_chunk: query.ChunkDone | None = None,
) -> Iterator[dict[str, Any]]:
    """The export's records in order, each one's source ids fed to the snapshot as it passes."""
    fmt = params.format
    if fmt.source == "demonstrations":
        for row in query.demonstrations(db, params):
            snapshot.add((row.id,))
            yield rec.sft_record(row)
        return
    if fmt.source == "labels":
        for row in query.labels(db, params):
            snapshot.add((row.id,))
            yield rec.label_record(row)
        return
    elo = None if fmt.preference else response_elo(db, params)  # the table formats' elo_* columns
    for judged in query.judged_rows(db, params, tally, preference=fmt.preference, on_chunk=on_chunk):
        snapshot.add(judged.judgement_ids)
        yield rec.table_record(judged, elo) if elo is not None else rec.preference_record(fmt, judged)


def export_to_folder(
    db: Session,
    params: ExportParams,
    folder: Path,
    *,
    name: str | None = None,
    on_chunk: query.ChunkDone | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Write the export as ``folder/name`` with ``name.ids.txt`` and ``name.snapshot.json`` beside
    it; returns what the job records as its result (format, file names, size, snapshot)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = name or file_name(params.format, now)
    target, ids_file, snapshot_file = folder / name, folder / f"{name}{IDS_SUFFIX}", folder / f"{name}{SNAPSHOT_SUFFIX}"
    partial, ids_partial = folder / f"{name}.partial", folder / f"{name}{IDS_SUFFIX}.partial"
    tally = query.Tally()
    try:
        with ids_partial.open("w") as ids:
            snapshot = SnapshotBuilder(params.format.source, ids)
            write_file(params.format, partial, records(db, params, snapshot, tally, on_chunk=on_chunk))
    except BaseException:  # cancelled, crashed or bad data: leave nothing that looks like an export
        partial.unlink(missing_ok=True)
        ids_partial.unlink(missing_ok=True)
        raise
    ids_partial.replace(ids_file)
    partial.replace(target)
    counts = asdict(tally) if params.format.source == "judgements" else {}
    summary = {
        **snapshot.finish(**counts),
        "params": params.model_dump(mode="json"),
        "created_at": (now or utcnow()).isoformat(),
    }
    write_snapshot(snapshot_file, summary)
    return {
        "format": params.format.value,
        "file": name,
        "ids_file": ids_file.name,
        "snapshot_file": snapshot_file.name,
        "bytes": target.stat().st_size,
        "snapshot": summary,
    }


def count_source(db: Session, params: ExportParams) -> int:
    """How many source rows the export will read (before agreement and verdict filters): its progress scale."""
    return query.count_source(db, params, params.format.source)


def stream_export(sessions: sessionmaker[Session], params: ExportParams) -> Iterator[bytes]:
    """A text export as UTF-8 chunks for an HTTP response; it opens its own session, because the
    response is sent after the request's session has closed.

    The first record is read here, before the response starts: the export's query runs now, so a value
    the database refuses raises while the request can still answer with a 4xx, instead of after the 200
    and the header row, where all a client sees is a dropped connection."""
    if not params.format.streamable:
        raise Invalid("format", f"{params.format.value} is written as a file: run it as an export job")
    db = sessions()
    try:
        rows = records(db, params, SnapshotBuilder(params.format.source), query.Tally())
        first = list(itertools.islice(rows, 1))
    except BaseException:
        db.close()
        raise

    def generate() -> Iterator[bytes]:
        try:
            for chunk in text_chunks(params.format, itertools.chain(first, rows)):
                yield chunk.encode("utf-8")
        finally:
            rows.close()
            db.close()

    return generate()


def finished_export(db: Session, settings: Settings, job_id: int) -> tuple[Path, str, ExportFormat]:
    """(path, download name, format) of a succeeded export job's file."""
    job = get_or_404(db, Job, job_id, "export", where=lambda j: j.kind == "export")
    if job.status is not JobStatus.succeeded or not job.result:
        raise NotFound(f"export {job_id} has no file yet (it is {job.status.value})")
    name = str(job.result.get("file", ""))
    if not SAFE_NAME.match(name):
        raise NotFound(f"export {job_id} has no file")
    path = exports_dir(settings) / str(job.id) / name
    if not path.is_file():
        raise NotFound(f"the file of export {job_id} is gone from the data folder")
    return path, name, ExportFormat(job.result["format"])
