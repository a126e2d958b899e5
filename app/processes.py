"""Whether another process still runs: how a job process and a warm generation server notice that
the process they serve has gone, so neither runs on unsupervised."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists. Signal 0 checks without signalling; a PermissionError means the
    process exists but belongs to another user, which still counts as alive (a zombie does too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
