"""What an ``sft`` job reads before training: the base policy, the demonstrations, the files, and the
harmless prompts the refusal rate is measured on.

Kept apart from the handler so each reads in one sitting: this module turns database rows and files
into the plain ``SFTExample``s and strings that the trainer and the refusal rule take.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.annotation.models import Demonstration
from app.config import Settings
from app.finetune.sft.params import FILE_NAME as SFT_FILE_NAME
from app.finetune.sft.params import SFTParams
from app.jobs.exceptions import JobFailed
from app.prompts.models import Prompt
from app.registry.job_inputs import local_policy
from app.registry.models import ModelVersion
from app.training.sft.data import BadConversation, SFTExample, demonstration_example, read_sft_jsonl

SFT_FOLDER = "sft"  # JSONL files live in <data_dir>/sft/: a job names them, it never takes a path
FILE_NAME = re.compile(SFT_FILE_NAME)
HARMLESS_FILE = Path(__file__).resolve().parents[2] / "pool" / "starter_prompts.jsonl"


@dataclass
class SFTInputs:
    base: ModelVersion
    base_path: Path
    examples: list[SFTExample]
    harmless: list[str]  # held-out prompts for the refusal rate
    harmless_source: str
    counts: dict[str, int] = field(default_factory=dict)  # where the examples came from


def demonstrations(db: Session) -> tuple[list[SFTExample], int]:
    """Every demonstration as a conversation, and how many were skipped (blank text)."""
    rows = db.execute(
        select(Demonstration.id, Demonstration.text, Demonstration.kind, Prompt.id, Prompt.messages)
        .join(Prompt, Prompt.id == Demonstration.prompt_id)
        .order_by(Demonstration.id)
    )
    examples, skipped = [], 0
    for demo_id, text, kind, prompt_id, messages in rows:
        try:
            examples.append(
                demonstration_example(messages, text, kind=kind.value, prompt_id=prompt_id, demonstration_id=demo_id)
            )
        except BadConversation:
            skipped += 1
    return examples, skipped


def jsonl_examples(settings: Settings, names: list[str]) -> list[SFTExample]:
    """The conversations of the named files in ``<data_dir>/sft/``; a bad line fails the job."""
    folder = settings.data_dir / SFT_FOLDER
    examples: list[SFTExample] = []
    for name in names:
        path = folder / name
        if not FILE_NAME.match(name) or not path.is_file():
            raise JobFailed(f"no SFT file {name[:200]!r} in the data folder's sft/")  # its path is the server's
        try:
            with path.open(encoding="utf-8") as stream:
                examples.extend(read_sft_jsonl(stream, source=name))
        except (BadConversation, UnicodeDecodeError) as exc:
            raise JobFailed(f"cannot use {name}: {exc}") from None
    return examples


def harmless_prompts(db: Session, set_id: int | None, examples: list[SFTExample], limit: int) -> tuple[list[str], str]:
    """Up to ``limit`` harmless prompts that no training example starts from, and where they came from.

    Default: the starter prompts shipped with the app (short everyday requests), a fixed list, so the
    rates of different runs are comparable. With ``set_id``: that set's non-retired, non-red-team prompts."""
    trained = {_last_user(list(ex.messages[:-1])) for ex in examples}
    if set_id is None:
        with HARMLESS_FILE.open(encoding="utf-8") as lines:
            candidates = [json.loads(line)["prompt"] for line in lines if line.strip()]
        source = "starter prompts shipped with the app"
    else:
        candidates = [
            _last_user(m)
            for m in db.scalars(
                select(Prompt.messages)
                .where(Prompt.prompt_set_id == set_id, Prompt.retired.is_(False), Prompt.red_team.is_(False))
                .order_by(Prompt.id)
            )
        ]
        source = f"prompt set {set_id} (non-red-team)"
    held_out = [text for text in dict.fromkeys(candidates) if text and text not in trained]
    return held_out[:limit], source


def _last_user(messages: list[dict[str, Any]]) -> str:
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")


def load_sft_inputs(db: Session, settings: Settings, params: SFTParams) -> SFTInputs:
    """Everything the job needs from the database and the files, before a model is loaded."""
    base, path = local_policy(db, params.base_version_id, field="base_version_id")
    demos, skipped = demonstrations(db) if params.use_demonstrations else ([], 0)
    files = jsonl_examples(settings, params.jsonl_files)
    examples = demos + files
    harmless, source = harmless_prompts(db, params.refusal_prompt_set_id, examples, params.refusal_prompts)
    counts = {"demonstrations": len(demos), "skipped_demonstrations": skipped, "jsonl": len(files)}
    return SFTInputs(base, path, examples, harmless, source, counts)
