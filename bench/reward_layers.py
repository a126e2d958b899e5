"""Does training only the reward backbone's top layers cost accuracy, across preferences of every kind?

``trainable_layers`` (the reward job's option) freezes the embeddings and the lower layers of the backbone.
On HH-RLHF it trains 1.5× faster at the same held-out loss (``bench/reward_vs_trl.py --hh-trainable-layers 3``),
but a default must hold for whatever a team prefers, not for HH's labels alone. This bench asks it of every
rule of ``bench/rules.py`` and of HH's own labels, the way the closed loop trains its reward model:

- pairs: HH-RLHF helpful-base test conversations with their two answers, sides shuffled
  (``bench/active_learning.shuffled_pairs``); a rule (or ``hh``, the dataset's label) judges each, and a tie
  teaches nothing, as in the product;
- ``--budget`` judged pairs train a fresh reward model (the default MiniLM backbone with the closed loop's
  reward settings: 2 epochs, 16 pairs a step, lr 5e-5, 128 tokens) once per setting of ``--layers``
  (0 = every layer), on the same verdicts and seed;
- each model is scored on the same ``--heldout`` pairs (their A/B verdicts; ties left out).

    .venv/bin/python bench/reward_layers.py                      # every rule and hh, layers 0 and 3
    .venv/bin/python bench/reward_layers.py --rule digit,hh --layers 0,2,3 --seeds 2

Prints a table of held-out accuracy per rule and setting, and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing

from bench.active_learning import Trainer, accuracy, annotator, examples, shuffled_pairs
from bench.rules import RULES


def run_rule(rule: str, seed: int, layers: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """One rule and seed: the same verdicts train one model per setting; their held-out accuracies."""
    judge = annotator(rule)
    pairs = shuffled_pairs(seed, args.heldout + args.budget)
    heldout_pairs, pool = pairs[: args.heldout], pairs[args.heldout :]
    heldout = (heldout_pairs, [judge(p) for p in heldout_pairs])
    verdicts = [judge(p) for p in pool]
    train = examples(pool, verdicts)
    row: dict[str, Any] = {"rule": rule, "seed": seed, "train_pairs": len(train)}
    row["heldout_pairs"] = sum(v != "tie" for v in heldout[1])
    if len(train) < 2 or row["heldout_pairs"] == 0:
        return {**row, "skipped": "too few decisive pairs"}
    for n in layers:
        trainer = Trainer(args, seed, trainable_layers=n)
        scorer = trainer.train(train)
        row[f"acc_{n}"] = round(accuracy(scorer, *heldout), 4)
        row[f"train_s_{n}"] = round(trainer.seconds, 1)
        print(
            f"  {rule:<15} seed {seed} layers {n}: {len(train)} A/B pairs, held-out accuracy {row[f'acc_{n}']:.3f} "
            f"on {row['heldout_pairs']}, {trainer.seconds:.0f} s",
            flush=True,
        )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rule", default="all", help="rules of bench/rules.py and/or hh, comma-separated; all")
    ap.add_argument("--layers", default="0,3", help="settings of trainable_layers to compare (0 = every layer)")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--budget", type=int, default=400, help="judged pairs the reward model trains on (ties drop)")
    ap.add_argument("--heldout", type=int, default=400)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--learning-rate", type=float, default=5e-5)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    rules = [*RULES, "hh"] if args.rule.strip() == "all" else [r.strip() for r in args.rule.split(",") if r.strip()]
    unknown = [r for r in rules if r != "hh" and r not in RULES]
    if unknown:
        raise SystemExit(f"unknown rule {unknown}; choose from all, hh, {', '.join(RULES)}")
    layers = [int(n) for n in args.layers.split(",")]
    started, load = time.perf_counter(), os.getloadavg()[0]
    print(f"reward accuracy by trainable layers {layers}: rules {rules}, load {load:.2f}", flush=True)
    rows = [run_rule(rule, seed, layers, args) for rule in rules for seed in range(args.seeds)]
    print(f"\n{'rule':<15} {'seed':>4} {'A/B':>5}  " + "  ".join(f"{'layers ' + str(n):>10}" for n in layers))
    for r in rows:
        cells = "  ".join(f"{r[f'acc_{n}']:>10.3f}" if f"acc_{n}" in r else f"{'–':>10}" for n in layers)
        print(f"{r['rule']:<15} {r['seed']:>4} {r['train_pairs']:>5}  {cells}")
    scored = [r for r in rows if "skipped" not in r]
    summary = {
        str(n): {
            "mean_acc": round(statistics.fmean(r[f"acc_{n}"] for r in scored), 4) if scored else None,
            "train_s": round(sum(r[f"train_s_{n}"] for r in scored), 1),
        }
        for n in layers
    }
    for n in layers[1:]:
        worst = min((r[f"acc_{n}"] - r[f"acc_{layers[0]}"] for r in scored), default=None)
        summary[str(n)]["worst_vs_first"] = None if worst is None else round(worst, 4)
    print(
        json.dumps(
            {
                "bench": "reward_layers",
                "layers": summary,
                "runs": rows,
                "budget": args.budget,
                "heldout": args.heldout,
                "load_at_start": round(load, 2),
                "total_s": round(time.perf_counter() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
