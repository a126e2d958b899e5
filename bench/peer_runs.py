"""The parts every ``bench/*_vs_trl.py`` script shares: timing a training call, repeating it interleaved
with the peer's, picking the median run, the rate figures and ratios of the JSON record, and the tiny
Llama / SmolLM2-tokenizer workload pieces.

Why one home: the four peer benches must measure in the same way (the same clocks, the same median, the
same steady-state rule), or their ratios would not be comparable; a fix to one measure must reach all.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Read by the libraries when they load, so set before transformers is imported below (and a script imports
# this module before torch): no tokenizer threads beside the trainers', no hub, no progress bars or notices.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
warnings.filterwarnings("ignore")

# isort: split
from transformers import TrainerCallback

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the scripts run without installing the project


# ---- clocks --------------------------------------------------------------------------------------------------------
def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(fn's result, wall seconds, CPU seconds of this process): CPU time is steadier than wall time when
    neighbours load this shared box, so every bench reports both."""
    start, cpu_start = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - start, time.process_time() - cpu_start


def load_now() -> float:
    """The 1-minute load average, printed beside every figure (a loaded box slows both sides alike only
    if both ran under it, which is why runs are interleaved)."""
    return round(os.getloadavg()[0], 2)


def load_triple() -> list[float]:
    """The 1-, 5- and 15-minute load averages."""
    return [round(v, 2) for v in os.getloadavg()]


def steady_rate(stamps: list[float], skip: int, per_step: int) -> float | None:
    """Items per second between the ``skip``-th and the last step timestamp: the rate once start-up
    (tokenising, building adapters, the first allocations) is over. None with too few steps."""
    if len(stamps) <= skip + 1:
        return None
    return (len(stamps) - 1 - skip) * per_step / (stamps[-1] - stamps[skip])


class StepTimer(TrainerCallback):
    """Timestamps every optimizer step of a TRL run (a transformers ``Trainer`` callback)."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.stamps.append(time.perf_counter())


class ProgressStamps:
    """A trainer reporter of ours that timestamps every progress message starting with ``prefix`` ("step "
    or "update ", i.e. run with ``log_every=1``) and otherwise stays quiet; subclasses keep metrics."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.stamps: list[float] = []
        self.logged: list[float] = []  # when each log line came

    def progress(self, frac: float, msg: str) -> None:
        if msg.startswith(self.prefix):
            self.stamps.append(time.perf_counter())

    def loop_seconds(self) -> float | None:
        """Seconds from the last log line before the first step (the loop's "training steps …" line, once the
        data is tokenised and the model built) to the last step: the span a peer's ``trainer.train()`` covers
        when its tokenisation happens in the trainer's constructor. None without steps or such a line."""
        before = [t for t in self.logged if self.stamps and t <= self.stamps[0]]
        return self.stamps[-1] - before[-1] if before else None

    def metric(self, step: int, name: str, value: float) -> None: ...
    def log(self, line: str) -> None:
        self.logged.append(time.perf_counter())

    def flush(self) -> None: ...
    def should_stop(self) -> bool:
        return False


def trl_common_args(seed: int, lr: float) -> dict[str, Any]:
    """The TrainingArguments every TRL run here shares, so the peer trains as plainly as ours: AdamW at
    ``lr`` decayed linearly to 0, no warm-up or weight decay, grad norm 1, fp32 on the CPU, no gradient
    checkpointing, nothing logged, saved or evaluated while timed, the same seed for weights and data order."""
    return {
        "learning_rate": lr,
        "lr_scheduler_type": "linear",
        "warmup_steps": 0,
        "weight_decay": 0.0,
        "max_grad_norm": 1.0,
        "gradient_checkpointing": False,
        "bf16": False,
        "use_cpu": True,
        "logging_steps": 10**9,
        "save_strategy": "no",
        "eval_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "seed": seed,
        "data_seed": seed,
        "dataloader_num_workers": 0,
    }


def trl_train_timed(seed: int, make_trainer: Callable[[], Any]) -> tuple[Any, float, float]:
    """(trainer, wall s, CPU s) of building a TRL trainer (which tokenises and wraps the model in its
    adapters, the draws of their init seeded with ``seed`` as ours seeds them) and training it."""
    import torch
    from transformers import PrinterCallback

    def construct_and_train() -> Any:
        torch.manual_seed(seed)
        trainer = make_trainer()
        trainer.remove_callback(PrinterCallback)  # it prints the final metrics dict; nothing else changes
        trainer.train()
        return trainer

    return timed(construct_and_train)


# ---- repeats, medians and ratios -----------------------------------------------------------------------------------
def interleaved(
    names: list[str],
    repeats: int,
    run_one: Callable[[str], dict],
    describe: Callable[[str, int, dict], str],
    *,
    alternate: bool = True,
) -> dict[str, list[dict]]:
    """``repeats`` fresh runs of every trainer, interleaved (the order reversed on odd repeats when
    ``alternate``) so a neighbour's load hits all alike; each run's dict gets the load at its start."""
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for rep in range(repeats):
        for name in names if rep % 2 == 0 or not alternate else names[::-1]:
            load = load_now()
            r = run_one(name)
            r["load"] = load
            runs[name].append(r)
            print(f"  {name} repeat {rep}: {describe(name, rep, r)}", flush=True)
    return runs


def loaded_runs(
    trainers: str,
    repeats: int,
    run_one: Callable[[str], dict],
    describe: Callable[[str, int, dict], str],
    note: str = "",
) -> tuple[dict[str, list[dict]], dict[str, list[float]]]:
    """:func:`interleaved` runs of the comma-separated ``trainers`` (alternating order), with the load
    averages before (printed, with ``note``) and after them, for the record."""
    before = load_triple()
    print(f"load before: {before}{note}", flush=True)
    names = [n.strip() for n in trainers.split(",") if n.strip()]
    runs = interleaved(names, repeats, run_one, describe)
    return runs, {"before": before, "after": load_triple()}


def median_run(runs: list[dict], wall_key: str = "train_s") -> dict:
    """The median run by wall time (the upper middle one for an even count)."""
    return sorted(runs, key=lambda r: r[wall_key])[len(runs) // 2]


def rate_figures(
    runs: list[dict],
    count: int,
    unit: str,
    *,
    steady: float | None,
    wall_key: str = "train_s",
    cpu_key: str | None = None,
    rate_digits: int = 2,
    wall_digits: int = 3,
) -> dict:
    """The rate figures of one trainer's runs: ``{unit}_per_s`` and ``wall_key`` of the median run, every
    run's rate, the steady rate (items/s, given) and items per median CPU-second (``cpu_key``, by default
    ``cpu_{unit}_per_s``)."""
    med = median_run(runs, wall_key)
    return {
        f"{unit}_per_s": round(count / med[wall_key], rate_digits),
        wall_key: round(med[wall_key], wall_digits),
        f"{unit}_per_s_all": [round(count / r[wall_key], rate_digits) for r in runs],
        f"steady_{unit}_per_s": round(steady, rate_digits) if steady else None,
        cpu_key or f"cpu_{unit}_per_s": round(count / statistics.median(r["cpu_s"] for r in runs), rate_digits),
    }


def ratios(ours: dict, theirs: dict, unit: str) -> tuple[float, float, float]:
    """(whole-call, steady-state, per-CPU-second) ratios ours/theirs, printed on one line."""
    ratio = ours[f"{unit}_per_s"] / theirs[f"{unit}_per_s"]
    steady = (ours[f"steady_{unit}_per_s"] or 0) / (theirs[f"steady_{unit}_per_s"] or float("nan"))
    cpu = ours[f"cpu_{unit}_per_s"] / theirs[f"cpu_{unit}_per_s"]
    print(f"ratio ours/trl: {ratio:.2f}x whole call, {steady:.2f}x steady state, {cpu:.2f}x per CPU-second")
    return ratio, steady, cpu


def versions(threads: int, trl_version: str | None = None) -> dict:
    """The software both sides ran on, for the JSON record."""
    import torch
    import transformers

    if trl_version is None:
        import trl

        trl_version = trl.__version__
    return {
        "trl_version": trl_version,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": threads,
    }


# ---- the tiny workload's pieces ------------------------------------------------------------------------------------
def smollm2_tokenizer(padding_side: str) -> Any:
    """SmolLM2-135M-Instruct's tokenizer (read once from the GGUF, cached) plus an added ``<|pad|>``."""
    from app.training.core.default_models import load_smollm2_tokenizer

    tok = load_smollm2_tokenizer(Path(tempfile.gettempdir()) / "rlhf-smollm2-tokenizer")
    tok.add_special_tokens({"pad_token": "<|pad|>"})
    tok.padding_side = padding_side
    return tok


def tiny_llama_config(tok: Any, hidden: int, layers: int, **extra: Any) -> Any:
    """The peer workloads' tiny Llama: hidden ``hidden``, intermediate 4×, ``layers`` layers, 4 heads, 4 KV heads."""
    from app.training.core.tiny import tiny_llama_config as config

    return config(
        tok, hidden_size=hidden, num_layers=layers, intermediate_size=4 * hidden, num_key_value_heads=4, **extra
    )
