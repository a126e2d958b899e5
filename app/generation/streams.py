"""Decoding several batches at once on a CPU, each on its own thread with its share of the torch threads.

A decoding step of a small model (SmolLM2-135M, a 64-row batch) is a few hundred small operations, and
OpenMP threads that meet at a barrier after each one either spin, which collapses when another process
holds a core (2-2.4x slower beside one busy process), or sleep and wake, which costs a third of the
quiet throughput. Measured on 2 cores, 32 prompts x 4 samples x 48 tokens: 2 threads waiting passively
114-139 tokens/s, spinning 165-178, one thread 138, two batches on two single-threaded streams 240-290.
Streams never meet, so a busy neighbour slows only its own core. The pool's backend and the trainers'
sampler both decode this way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import torch

T = TypeVar("T")
CPU_STREAMS = 2  # measured on 2 cores; on a larger CPU each stream's team gets half the threads


def streams_for(device: torch.device, wanted: int = 0) -> int:
    """``wanted`` when set; else :data:`CPU_STREAMS` on a CPU with that many torch threads, one elsewhere (a GPU
    runs one batch's kernels back to back anyway)."""
    if wanted:
        return wanted
    return CPU_STREAMS if device.type == "cpu" and torch.get_num_threads() >= CPU_STREAMS else 1


def in_streams(tasks: Sequence[Callable[[], T]], streams: int) -> list[T]:
    """Every task's result, in order. With ``streams`` > 1 and more than one task they run on that many
    threads at once, the torch threads shared out among them and the caller's grad and inference modes
    (a thread's own) carried in; the first error is raised here. Otherwise they run in this thread."""
    if streams <= 1 or len(tasks) <= 1:
        return [task() for task in tasks]
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def run(task: Callable[[], T]) -> T:
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            return task()

    with _threads_each(streams), ThreadPoolExecutor(streams, thread_name_prefix="decode") as pool:
        futures = [pool.submit(run, task) for task in tasks]
        return [future.result() for future in futures]


@contextmanager
def _threads_each(streams: int) -> Iterator[None]:
    """The torch threads shared out among ``streams`` for the block's length: a thread started inside takes
    the count set here on its first operation (torch's OpenMP and MKL counts are per thread)."""
    total = torch.get_num_threads()
    torch.set_num_threads(max(1, total // streams))
    try:
        yield
    finally:
        torch.set_num_threads(total)
