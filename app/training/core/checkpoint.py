"""Crash-safe writes for trained models and resumable checkpoints.

A model folder is written beside its target and renamed into place, and a resumable checkpoint is one
file written aside and ``os.replace``-d over the previous one, so a crash at any instant leaves either
the old state or the new one on disk, never half of either. Data is fsync-ed before each rename,
otherwise a power cut could leave a renamed file that is still empty.
"""

from __future__ import annotations

import os
import random
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _fsync_path(path: Path) -> None:
    """Flush one file or directory entry to stable storage (directories are skipped where unsupported)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:  # e.g. directories on Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file under ``root`` and then the folders themselves, deepest first."""
    for folder, _dirs, files in os.walk(root, topdown=False):
        for name in files:
            _fsync_path(Path(folder) / name)
        _fsync_path(Path(folder))


@contextmanager
def atomic_write_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder to fill; on success it is renamed to ``target``.

    ``target`` must not exist: a finished model folder is never overwritten, so a registry row that
    points at it keeps pointing at the same bytes. On error the temporary folder is removed.
    """
    target = Path(target)
    if target.exists():
        raise FileExistsError(f"{target} already exists; a model folder is never overwritten")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        yield tmp
        fsync_tree(tmp)
        os.rename(tmp, target)  # atomic on POSIX; fails rather than merging if target appeared
        _fsync_path(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary sibling file, fsync it, then replace ``path`` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_path(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint dict at ``path``, or None when there is none.

    Loaded with ``weights_only=True``: a checkpoint holds only tensors and plain Python values,
    so a tampered file cannot run code.
    """
    path = Path(path)
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def capture_rng_state() -> dict[str, Any]:
    """Every random generator a training step may draw from, in a weights-only-loadable form."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put the generators back where :func:`capture_rng_state` found them."""
    random.setstate(_as_tuple(state["python"]))
    np_state = state["numpy"]
    keys = np_state["keys"].numpy().astype(np.uint32)
    np.random.set_state((np_state["kind"], keys, np_state["pos"], np_state["has_gauss"], np_state["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    """``random.setstate`` needs tuples; a round trip through some serialisers gives lists."""
    if isinstance(value, list | tuple):
        return tuple(_as_tuple(item) for item in value)
    return value
