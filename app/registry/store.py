"""The model store: one Hugging Face-format folder per version under the models folder.

A checkpoint is written into a staging folder on the same filesystem, then renamed into place,
then registered; a crash at any point leaves either nothing or a complete folder, never half of
one, and a half-written staging folder is ignored (and swept later).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.config import Settings

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
STAGING = ".staging"


def version_dir(settings: Settings, kind: str, name: str) -> Path:
    if not SAFE_NAME.match(name):
        raise ValueError(f"model version name {name!r} is not a safe folder name")
    return settings.resolved_models_dir / kind / name


@contextmanager
def staged_folder(settings: Settings, final: Path) -> Iterator[Path]:
    """Yield an empty staging folder; on success rename it to ``final`` (atomic on one filesystem).

    If ``final`` already exists (a re-run of a job whose earlier attempt got that far), the
    staged copy is dropped and the existing complete folder is kept."""
    staging_root = settings.resolved_models_dir / STAGING
    staging_root.mkdir(parents=True, exist_ok=True)
    staging = staging_root / f"{final.name}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
        final.parent.mkdir(parents=True, exist_ok=True)
        _fsync_tree(staging)
        try:
            os.rename(staging, final)
        except OSError:
            if not (final / "config.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def sweep_staging(settings: Settings) -> int:
    """Remove staging folders left by crashed writers; returns how many."""
    root = settings.resolved_models_dir / STAGING
    if not root.exists():
        return 0
    count = 0
    for child in root.iterdir():
        shutil.rmtree(child, ignore_errors=True)
        count += 1
    return count
