"""SELF-INSTRUCT with the default policy: how many approvable new prompts 20 seeds yield.

A scratch deployment (SQLite in a temporary folder) gets 20 seed prompts (every fifth of the starter
prompts, so the topics vary) and SmolLM2-135M-Instruct, converted once into a cache folder and
registered as the promoted policy. One ``self_instruct`` job runs through the worker's own code path
(``run_attempt``); then the bench checks what an admin would be offered: the pending prompts of the
new review set, that no two of them (nor any with a seed) reach the ROUGE-L threshold, and that
approving them all puts them in the pool. It prints the counts by rejection reason and a sample, and
ends with one JSON line.

Run::

    .venv/bin/python bench/self_instruct.py [--target 30] [--max-candidates 800] [--threads 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench/generation.py: spinning threads on a shared box
os.environ.setdefault("HF_HUB_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing

STARTER = Path(__file__).resolve().parents[1] / "app" / "pool" / "starter_prompts.jsonl"
DEFAULT_CHECKPOINT = Path(tempfile.gettempdir()) / "rlhf-smollm2-policy"


def seed_prompts(count: int) -> list[str]:
    """Every fifth starter prompt: the file is grouped by topic, so this spreads the seeds over them."""
    texts = [json.loads(line)["prompt"] for line in STARTER.read_text().splitlines() if line.strip()]
    return texts[::5][:count]


def deploy(root: Path, checkpoint: Path, seeds: list[str], *, batch_size: int, threads: int) -> tuple:
    """Settings, sessions, the seed set's id: a migrated SQLite, the seeds, the promoted policy."""
    from app import migrate
    from app.config import Settings
    from app.db import make_engine, make_sessionmaker
    from app.prompts.service import add_prompt, create_set
    from app.prompts.validation import single_turn
    from app.registry.models import ModelKind, ModelStatus, ModelVersion

    settings = Settings(data_dir=root / "var", secret_key=secrets.token_hex(16))
    engine = make_engine(f"sqlite:///{root / 'bench.sqlite3'}")
    migrate.upgrade(engine)
    sessions = make_sessionmaker(engine)
    config = {"backend": "transformers", "path": str(checkpoint), "batch_size": batch_size}
    with sessions() as db:
        seed_set = create_set(db, name="seeds", description="bench seeds")
        for text in seeds:
            add_prompt(db, set_id=seed_set.id, messages=single_turn(text))
        db.add(
            ModelVersion(
                name="smollm2", kind=ModelKind.policy, status=ModelStatus.promoted, path=str(checkpoint), config=config
            )
        )
        db.commit()
        return settings, sessions, seed_set.id


def run_job(settings, sessions, params: dict) -> dict:
    """One self_instruct job, claimed and run as a worker's child runs it; its stored result."""
    from app.jobs.child import ChildSpec, run_attempt
    from app.jobs.lifecycle import claim_next
    from app.jobs.models import Job, JobStatus
    from app.jobs.service import enqueue

    with sessions() as db:
        job_id = enqueue(db, kind="self_instruct", params=params).id
        db.commit()
        claim = claim_next(db, worker_id="bench", kinds=["self_instruct"], lease_seconds=3600)
        db.commit()
    run_attempt(
        sessions,
        ChildSpec(
            claim=claim,
            module="app.instruct.self_instruct_job",
            database_url="",
            settings=settings,
            worker_pid=os.getpid(),
        ),
    )
    with sessions() as db:
        job = db.get(Job, job_id)
        if job.status is not JobStatus.succeeded:
            raise RuntimeError(f"self_instruct job {job.status.value}: {job.error}\n{job.log_tail}")
        return dict(job.result)


def max_pairwise(texts: list[str]) -> tuple[float, tuple[str, str] | None]:
    """The highest ROUGE-L F-measure between any two texts (the filter's own scorer), and the pair."""
    from rouge_score.rouge_scorer import RougeScorer

    scorer, best, pair = RougeScorer(["rougeL"]), 0.0, None
    for a, b in itertools.combinations(texts, 2):
        score = scorer.score(a, b)["rougeL"].fmeasure
        if score > best:
            best, pair = score, (a, b)
    return best, pair


def approve_all(sessions, set_id: int) -> tuple[int, int]:
    """Approve every pending prompt as an admin would; (approved, prompts the pool may now draw)."""
    from sqlalchemy import func, select

    from app.instruct import review
    from app.prompts.models import Prompt, PromptSet, PromptSetStatus

    with sessions() as db:
        report = review.decide(db, set_id=set_id, decision="approve")
        usable = db.scalar(
            select(func.count())
            .select_from(Prompt)
            .join(PromptSet)
            .where(PromptSet.id == set_id, PromptSet.status == PromptSetStatus.active, Prompt.retired.is_(False))
        )
        return report.changed, int(usable or 0)


def pending_texts(sessions, set_id: int | None) -> list[str]:
    from app.instruct import review

    if set_id is None:
        return []
    with sessions() as db:
        return [
            p.messages[-1]["content"]
            for p, state in review.review_prompts(db, set_id)
            if state is review.ReviewState.pending
        ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--target", type=int, default=30, help="stop once this many are kept")
    parser.add_argument("--max-candidates", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=32, help="requests per generate call")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    args = parser.parse_args()

    import torch

    from app.instruct.self_instruct import REASONS
    from app.training.core.convert import convert_default_policy

    torch.set_num_threads(args.threads)
    checkpoint = convert_default_policy(args.checkpoint)
    seeds = seed_prompts(args.seeds)
    with tempfile.TemporaryDirectory(prefix="rlhf-self-instruct-") as tmp:
        settings, sessions, seed_set_id = deploy(
            Path(tmp), checkpoint, seeds, batch_size=args.batch_size, threads=args.threads
        )
        start = time.perf_counter()
        result = run_job(
            settings,
            sessions,
            {
                "seed_set_id": seed_set_id,
                "target": args.target,
                "seed": args.seed,
                "max_candidates": args.max_candidates,
                "batch_size": args.batch_size,
            },
        )
        seconds = time.perf_counter() - start
        kept = pending_texts(sessions, result["prompt_set_id"])
        score, pair = max_pairwise(kept + seeds)
        approved, usable = approve_all(sessions, result["prompt_set_id"]) if kept else (0, 0)
    print(
        f"{len(seeds)} seeds, {result['requests']} requests, {result['generated']} candidates in {seconds:.0f} s: "
        f"kept {result['kept']}"
    )
    for reason in REASONS:
        print(f"  rejected {reason:>13}: {result['rejected'][reason]}")
    print(
        f"highest ROUGE-L between two kept prompts or a kept prompt and a seed: {score:.3f}"
        + (f" ({pair[0]!r} ~ {pair[1]!r})" if pair else "")
    )
    print(f"approved {approved}; the pool may now draw {usable} of them. Sample:")
    for text in kept[:12]:
        print(f"  - {text}")
    ok = len(kept) >= 20 and score < 0.7 and usable == len(kept)
    print(
        json.dumps(
            {
                "bench": "self_instruct",
                "seeds": len(seeds),
                "requests": result["requests"],
                "generated": result["generated"],
                "kept": result["kept"],
                "approvable": len(kept),
                "rejected": result["rejected"],
                "max_pairwise_rouge_l": round(score, 4),
                "approved_in_pool": usable,
                "seconds": round(seconds, 1),
                "ok": ok,
            }
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
