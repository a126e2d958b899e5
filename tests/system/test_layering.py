"""The trainers and generation backends load without the web framework or the ORM (each in a fresh
interpreter, since this test process has both loaded), so they run in a job, a notebook or under
``accelerate launch`` alike. ``lint-imports`` guards the same rule statically; this proves it at runtime."""

from __future__ import annotations

import subprocess
import sys

import pytest

FRAMEWORK_FREE = [
    "app.training.reward.trainer",
    "app.training.classifier.trainer",
    "app.training.ppo.trainer",
    "app.training.sft.trainer",
    "app.training.dpo.trainer",
    "app.training.dpo.online",
    "app.training.rloo.trainer",
    "app.training.core.scoring",
    "app.generation.transformers_backend",
    "app.generation.openai_backend",
]
WEB_AND_ORM = ("fastapi", "starlette", "sqlalchemy")


@pytest.mark.parametrize("module", FRAMEWORK_FREE)
def test_module_imports_neither_the_web_framework_nor_the_orm(module: str) -> None:
    probe = f"import sys, {module}; print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(WEB_AND_ORM)!r}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip() == "[]", f"{module} loads {out.stdout.strip()}"
