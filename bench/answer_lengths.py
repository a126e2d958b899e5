"""How long the default policy's answers are, and which token budget lets them finish.

An answer cut off at the budget shows annotators half a sentence and hides every trait of how an answer
ends (a closing question, a summary, a sign-off), so the pool's budget (``RLHF_POOL_MAX_NEW_TOKENS``) must
fit the model: ≥ 90 % of answers should end at EOS. This samples the starter prompts (104, the pool's own
first prompts) with the pool's sampling settings at a generous budget, once, and reads off the share that
ends at EOS and the mean length for every smaller budget as well: a row's tokens up to a cut do not depend
on where the cut is, so one run at the largest budget answers for all of them.

    .venv/bin/python bench/answer_lengths.py [--budget 512] [--samples 1] [--threads 2] [--system "Be brief."]

Measured (this 2-core box, load 3-5 from other work, 1,267 s): SmolLM2-135M-Instruct's answers run long —
median 202 tokens where they end; 9.6 % end at EOS within 48 tokens, 28.8 % within 128 (the pool's default),
53.8 % within 256, 83.7 % within 512. No budget up to 512 reaches 90 %.

With the installed policy's instruction ("Answer in two or three sentences.", the default of ``--system``) and
the pool's own pick (``--samples 4``: of each prompt's four samples, whole answers first, then the most
different; ``--budget 384``, alone, load 0.6, 2,089 s): 92.8 % of the pool's picked answers end at EOS within
320 tokens (mean 152 tokens; 79.3 % of single samples), 86.1 % within 256 and 60.6 % within 128 — so the pool's
budget is 320. (An earlier run at ``--budget 256``: 85.1 % of the pool's at 256, 70.9 % of single samples.)

The budget also decides what a preference can change: for each trait rule of ``bench/rules.py`` it prints
the share of answers (cut at each budget) that have the preferred trait and the win-rate ceiling that share
leaves (:func:`bench.rules.win_ceiling`): a trait no cut answer shows cannot be learned, and one nearly every
answer already shows leaves nothing to win.

Ends with one JSON line: per budget the EOS share, the mean length in tokens and each trait's share and
ceiling, and the smallest budget that reaches the target share.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench/generation.py: spinning threads on a busy box
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from transformers import AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing

from app.config import Settings
from app.generation import SamplingParams, TransformersBackend
from app.pool.diverse import most_different
from app.pool.generate import usable
from app.training.core.convert import convert_default_policy
from bench.generation import DEFAULT_CHECKPOINT
from bench.rules import TRAITS, win_ceiling

STARTER = Path(__file__).resolve().parents[1] / "app" / "pool" / "starter_prompts.jsonl"
BUDGETS = (48, 64, 96, 128, 160, 192, 256, 320, 384, 512)
TARGET = 0.9


def starter_prompts(system: str = "") -> list[list[dict[str, str]]]:
    """The starter prompts as conversations, each opened by ``system`` when one is given."""
    lines = STARTER.read_text(encoding="utf-8").splitlines()
    opening = [{"role": "system", "content": system}] if system else []
    return [[*opening, {"role": "user", "content": json.loads(line)["prompt"]}] for line in lines if line.strip()]


def pool_pairs(
    texts: list[str], ended: list[int | None], lengths: list[int], budget: int, k: int
) -> tuple[float, float]:
    """The pool's pick from each prompt's ``k`` samples cut at ``budget`` (``app.pool.diverse``: whole
    answers first, then the most different): the share of picked answers that end at EOS, and their mean
    length in tokens."""
    groups = [texts[i : i + k] for i in range(0, len(texts), k)]
    whole = [[n is not None and n <= budget for n in ended[i : i + k]] for i in range(0, len(ended), k)]
    picked = [
        (g * k + i) for g, pick in enumerate(most_different(groups, usable, whole)) if pick is not None for i in pick
    ]
    done = [ended[i] is not None and ended[i] <= budget for i in picked]
    return sum(done) / len(done), statistics.mean(lengths[i] for i in picked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=int, default=512, help="the largest budget sampled (tokens)")
    parser.add_argument("--samples", type=int, default=1, help="answers per prompt")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--system",
        default=Settings().bootstrap_system_prompt,
        help="the system message before each prompt; default: the one the installed policy's chat template "
        "carries (RLHF_BOOTSTRAP_SYSTEM_PROMPT); '' for the model's own",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    defaults = Settings()
    folder = convert_default_policy(DEFAULT_CHECKPOINT)
    backend = TransformersBackend.from_path(folder, batch_size=args.batch_size)
    prompts = starter_prompts(args.system)
    params = SamplingParams(
        temperature=defaults.pool_temperature,
        top_p=defaults.pool_top_p,
        max_new_tokens=args.budget,
        seed=args.seed,
        n=args.samples,
    )
    print(
        f"{len(prompts)} starter prompts x {args.samples} x up to {args.budget} tokens "
        f"(temperature {params.temperature}, top_p {params.top_p}, system {args.system!r}), "
        f"load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    start = time.perf_counter()
    answers = backend.generate(prompts, params)
    seconds = time.perf_counter() - start
    # A "stop" answer's token_count includes its EOS: it ends at EOS under any budget ≥ that count.
    ended = [a.token_count if a.finish_reason == "stop" else None for a in answers]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    token_ids = [tokenizer(a.text, add_special_tokens=False).input_ids for a in answers]
    rows = []
    k = args.samples
    print(
        f"  {'budget':>6}  {'EOS':>6}  {'tokens':>6}  {'pool EOS':>8}  {'tokens':>6}  "
        + "  ".join(f"{name:>15}" for name in TRAITS)
    )
    for budget in (b for b in BUDGETS if b <= args.budget):
        share = sum(1 for n in ended if n is not None and n <= budget) / len(answers)
        lengths = [min(a.token_count, budget) for a in answers]
        texts = [
            tokenizer.decode(ids[:budget]) if len(ids) > budget else a.text
            for a, ids in zip(answers, token_ids, strict=True)
        ]
        traits = {name: sum(map(has, texts)) / len(texts) for name, has in TRAITS.items()}
        pool_share, pool_tokens = pool_pairs(texts, ended, lengths, budget, k) if k >= 2 else (None, None)
        rows.append(
            {
                "budget": budget,
                "eos_share": round(share, 3),
                "mean_tokens": round(statistics.mean(lengths), 1),
                "pool_eos_share": None if pool_share is None else round(pool_share, 3),
                "pool_mean_tokens": None if pool_tokens is None else round(pool_tokens, 1),
                "traits": {n: {"share": round(s, 3), "ceiling": round(win_ceiling(s), 3)} for n, s in traits.items()},
            }
        )
        cells = "  ".join(f"{s:6.1%} ≤{win_ceiling(s):6.1%}" for s in traits.values())
        pool = f"{pool_share:8.1%}  {pool_tokens:6.1f}" if pool_share is not None else f"{'–':>8}  {'–':>6}"
        print(f"  {budget:6d}  {share:6.1%}  {statistics.mean(lengths):6.1f}  {pool}  {cells}")
    finished = [n for n in ended if n is not None]
    fitting = next((r["budget"] for r in rows if r["eos_share"] >= TARGET), None)
    print("(trait columns: share of answers with the preferred trait ≤ the win-rate ceiling it leaves)")
    print(f"{seconds:.0f} s; smallest budget with ≥ {TARGET:.0%} at EOS: {fitting}")
    summary = {
        "answers": len(answers),
        "eos_share_at_max": round(len(finished) / len(answers), 3),
        "median_finished_tokens": statistics.median(finished) if finished else None,
        "system": args.system,
        "budgets": rows,
        "smallest_budget_at_target": fitting,
        "seconds": round(seconds, 1),
        "load": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
