"""Run a training test file as two torchrun processes (gloo on the CPU) and read back what each rank saw.

A distributed test is its own worker: pytest calls :func:`launch_two_ranks` on the file, torchrun runs
the file's ``__main__`` block twice, and that block hands its run function to :func:`worker_main`, which
writes ``rank<N>.json`` for the test to compare with a single-process run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def launch_two_ranks(script: str, out: Path) -> list[dict[str, Any]]:
    """Run ``script`` under torchrun on two processes writing into ``out``; the records of rank 0 and 1.

    One thread a process and an offline hub: the ranks must not fight for the two cores or the network."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)]),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", script, str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in (0, 1)]


def this_rank() -> dict[str, int]:
    """The start of a rank's record: which rank this process is, out of how many (0 of 1 without torchrun)."""
    return {"rank": int(os.environ.get("RANK", 0)), "world": int(os.environ.get("WORLD_SIZE", 1))}


def worker_main(run: Callable[[Path], dict[str, Any]]) -> None:
    """The ``__main__`` of a distributed test: ``run(out)`` on this rank, its record into ``out``.

    The repository root goes on ``sys.path`` so the file also runs by hand under ``torchrun``."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    record = run(out)
    (out / f"rank{record['rank']}.json").write_text(json.dumps(record))
    from app.training.core.rank import end_process_group

    end_process_group()
