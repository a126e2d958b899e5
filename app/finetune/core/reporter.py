"""The trainers' reporter protocol (``app.training.core.loop.Reporter``) on top of a job's reporter.

The trainers know nothing of jobs; the reward, classifier, SFT and PPO jobs hand them this bridge so
progress, curves and log lines land in the jobs tables, a cancellation reads as ``should_stop``, and
``flush`` (called before each checkpoint) writes every curve point up to that checkpoint, so an attempt
killed right after it and resumed from it leaves no gap in the curves.
"""

from __future__ import annotations

from app.jobs.reporter import Reporter as JobReporter


class TrainerReporter:
    """``span`` maps the trainer's 0–1 onto part of the job's bar, when the job has other phases too."""

    def __init__(self, reporter: JobReporter, *, span: tuple[float, float] = (0.0, 1.0)) -> None:
        self._reporter = reporter
        self._start, self._width = span[0], span[1] - span[0]

    def progress(self, frac: float, msg: str) -> None:
        self._reporter.progress(self._start + self._width * frac, msg)

    def metric(self, step: int, name: str, value: float) -> None:
        self._reporter.metric(step, name, value)

    def log(self, line: str) -> None:
        self._reporter.log(line)

    def should_stop(self) -> bool:
        return self._reporter.cancelled()  # reads the database at most once per flush interval

    def flush(self) -> None:
        self._reporter.flush()
