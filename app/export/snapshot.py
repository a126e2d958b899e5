"""The snapshot an export records: which rows went in (a hash of their ids) and how many.

A reward job can name an export (by the export job's id) and know exactly what data it
trained on: the snapshot lives in the export job's ``result`` and beside the file as
``<file>.snapshot.json``, with the exported ids in ``<file>.ids.txt`` (one per line) so the rows
can be looked up again. The hash is over the ids in export order, so the same rows exported twice hash
the same, and any added or removed row changes it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy.orm import Session

from app.errors import Invalid
from app.jobs.models import Job, JobStatus
from app.lookup import get_or_404

SNAPSHOT_SUFFIX = ".snapshot.json"
IDS_SUFFIX = ".ids.txt"


@dataclass
class SnapshotBuilder:
    """Feed it the ids of every exported row; it hashes them (and writes them to ``ids``) as it goes."""

    source: str  # judgements | demonstrations | labels
    ids: IO[str] | None = None
    rows: int = 0
    items: int = 0
    _hash: Any = field(default_factory=hashlib.sha256)

    def add(self, item_ids: tuple[int, ...] | list[int]) -> None:
        """One exported row, made of one or more source rows (a majority row has several)."""
        self.rows += 1
        for item in item_ids:
            self.items += 1
            line = f"{item}\n"
            self._hash.update(line.encode())
            if self.ids is not None:
                self.ids.write(line)

    def finish(self, **counts: int) -> dict[str, Any]:
        return {
            "source": self.source,
            "sha256": self._hash.hexdigest(),
            "counts": {"rows": self.rows, self.source: self.items, **counts},
        }


@dataclass(frozen=True)
class ExportSnapshot:
    """A finished export as another job sees it."""

    job_id: int
    format: str
    source: str  # judgements | demonstrations | labels
    file: Path
    ids_file: Path
    sha256: str
    counts: dict[str, int]
    params: dict[str, Any]


def write_snapshot(path: Path, snapshot: dict[str, Any]) -> None:
    path.write_text(json.dumps(snapshot, indent=2, sort_keys=True))


def load_snapshot(db: Session, *, export_job_id: int, exports_dir: Path) -> ExportSnapshot:
    """The snapshot of a succeeded export job; ``NotFound`` / ``Invalid`` when there is none to use."""
    job = get_or_404(db, Job, export_job_id, "export", where=lambda j: j.kind == "export")
    if job.status is not JobStatus.succeeded or not job.result:
        raise Invalid(
            "export_job_id", f"export {export_job_id} is {job.status.value}; only a finished export can be used"
        )
    folder = exports_dir / str(job.id)
    result = job.result
    return ExportSnapshot(
        job_id=job.id,
        format=str(result["format"]),
        source=str(result["snapshot"]["source"]),
        file=folder / str(result["file"]),
        ids_file=folder / str(result["ids_file"]),
        sha256=str(result["snapshot"]["sha256"]),
        counts=dict(result["snapshot"]["counts"]),
        params=dict(job.params),
    )


def read_ids(snapshot: ExportSnapshot) -> list[int]:
    """The export's source ids in export order, checked against the recorded hash, so a job that
    names the export trains on exactly the rows it held (``Invalid`` when the file is gone or altered)."""
    digest = hashlib.sha256()
    ids: list[int] = []
    try:
        with snapshot.ids_file.open("rb") as lines:
            for line in lines:
                digest.update(line)
                ids.append(int(line))
    except FileNotFoundError:
        raise Invalid("export_job_id", f"export {snapshot.job_id}'s id list is gone from the data folder") from None
    except ValueError:
        raise Invalid("export_job_id", f"export {snapshot.job_id}'s id list is damaged (a line is not an id)") from None
    if digest.hexdigest() != snapshot.sha256:
        raise Invalid("export_job_id", f"export {snapshot.job_id}'s id list does not match its snapshot hash")
    return ids
