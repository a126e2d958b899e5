"""A probe that every launched training process installs (``RLHF_RANK_SETUP=tests.jobs.rank_probe:install``):
it records this process's pid and a digest of the trainable parameters before and after each optimizer
step, one JSON line each, into ``$RLHF_TEST_PROBE_DIR/rank<N>.jsonl``.

Each rank trains on its own share of every batch, so the digests after a step agree across ranks only if
the gradients were all-reduced: the test's proof that the processes trained one model together.

With ``$RLHF_TEST_CRASH=<rank>:<step>`` that rank raises right after that optimizer step, once (a marker
file in the probe folder keeps a re-run from crashing again): a rank's crash in the middle of a run.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

PROBE_DIR_ENV = "RLHF_TEST_PROBE_DIR"
CRASH_ENV = "RLHF_TEST_CRASH"


class ProbeCrash(RuntimeError):
    """The crash a test asked for."""


def _digest(optimizer: Any) -> str:
    """sha256 over the optimizer's parameters, in the optimizer's own order (the same on every rank)."""
    digest = hashlib.sha256()
    for group in optimizer.param_groups:
        for param in group["params"]:
            digest.update(param.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def install() -> None:
    """Record this rank's pid now and the parameters around every optimizer step from here on."""
    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

    folder, rank = Path(os.environ[PROBE_DIR_ENV]), os.environ["RANK"]
    path = folder / f"rank{rank}.jsonl"
    crash_rank, _, crash_step = os.environ.get(CRASH_ENV, "").partition(":")
    steps = 0

    def write(record: dict[str, Any]) -> None:
        with path.open("a") as out:
            out.write(json.dumps(record) + "\n")

    write({"pid": os.getpid(), "world": int(os.environ["WORLD_SIZE"])})
    register_optimizer_step_pre_hook(lambda optimizer, args, kwargs: write({"before": _digest(optimizer)}))

    def after(optimizer: Any, args: Any, kwargs: Any) -> None:
        nonlocal steps
        steps += 1
        write({"after": _digest(optimizer)})
        marker = folder / "crashed"
        if crash_rank == rank and str(steps) == crash_step and not marker.exists():
            marker.touch()
            raise ProbeCrash(f"rank {rank} crashes after optimizer step {steps}, as the test asked")

    register_optimizer_step_post_hook(after)


def read(folder: Path, rank: int) -> list[dict[str, Any]]:
    """What rank ``rank`` recorded, in order ([] before it started)."""
    path = folder / f"rank{rank}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
