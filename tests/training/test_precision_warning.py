"""A bf16 run on a CPU that only emulates bf16 is warned in the job's log (it runs many times slower)."""

from __future__ import annotations

import pytest

from app.training.core import loop
from app.training.reward.config import RewardConfig


class Lines:
    """A reporter that keeps its log lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def progress(self, frac: float, msg: str) -> None: ...
    def metric(self, step: int, name: str, value: float) -> None: ...
    def log(self, line: str) -> None:
        self.lines.append(line)

    def should_stop(self) -> bool:
        return False

    def flush(self) -> None: ...


@pytest.mark.parametrize(
    ("precision", "device", "native", "warned"),
    [
        ("bf16", "cpu", False, True),
        ("bf16", "cpu", True, False),
        ("bf16", "cuda", False, False),
        ("no", "cpu", False, False),
        ("fp16", "cpu", False, False),
    ],
)
def test_only_emulated_bf16_is_warned(monkeypatch, precision, device, native, warned) -> None:
    monkeypatch.setattr(loop, "cpu_computes_bf16", lambda: native)
    warning = loop.emulated_bf16_warning(precision, device)
    assert (warning is not None) is warned
    if warned:
        assert "emulated" in warning and "mixed_precision: no" in warning


def test_the_warning_reaches_the_jobs_log_and_the_setting_is_kept(monkeypatch) -> None:
    monkeypatch.setattr(loop, "cpu_computes_bf16", lambda: False)
    reporter = Lines()
    accelerator, given = loop.setup_accelerator(RewardConfig(use_cpu=True, mixed_precision="bf16"), reporter)
    assert given is reporter
    assert accelerator.mixed_precision == "bf16"
    assert len(reporter.lines) == 1 and "emulated" in reporter.lines[0]

    plain = Lines()
    loop.setup_accelerator(RewardConfig(use_cpu=True), plain)
    assert plain.lines == []

