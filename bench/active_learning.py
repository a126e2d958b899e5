"""Active learning against the oldest-first queue: the reward model's held-out accuracy per judgement spent.

The product's ``RLHF_QUEUE_ORDER=uncertain`` serves first the pending pairs the newest reward model is least
sure about (``app.training.reward.uncertainty``, the very function the ``rank_pairs`` job uses). This bench
asks whether that buys accuracy with fewer judgements, the way a team would meet it:

- pairs: HH-RLHF helpful-base test conversations (``/work/shared/data``), each with its two answers, sides
  shuffled; a simulated annotator judges them by a rule of ``bench/rules.py`` (``--rule``; ``hh`` takes the
  dataset's own human label instead). A tie costs a judgement and teaches nothing, as in the product;
- a pending pool of ``--window`` pairs in arrival order, refilled as pairs are judged (the product's pool
  target); the oldest-first queue judges them in order, the uncertain queue judges the ``--step`` most
  uncertain of the window after each retraining (before the first reward model: the oldest, as the product);
- after every ``--step`` judgements a fresh reward model (the default MiniLM backbone, the reward job's
  settings) is trained on all A/B verdicts so far, and both queues' models are scored on the same
  held-out pairs (judged by the same rule, ties left out).

It prints the accuracy of both queues at each number of judgements, and how many judgements the uncertain
queue needed to reach the oldest-first queue's final accuracy (the saving; the issue asks for ≥ 30 %).

    .venv/bin/python bench/active_learning.py                          # on_topic, no_first_person, hh; 100-400
    .venv/bin/python bench/active_learning.py --rule list,hh --seeds 2

Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench/generation.py: spinning threads on a busy box

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing

from app.training.core.data import PreferenceExample
from app.training.reward.config import RewardConfig
from app.training.reward.scoring import load_reward_scorer
from app.training.reward.trainer import train_reward_model
from app.training.reward.uncertainty import most_uncertain
from bench.reward_vs_trl import HH_FILE, load_hh
from bench.rules import RULES

Verdict = str  # "a" | "b" | "tie"


def hh_label(row: dict[str, Any]) -> Verdict:
    """The dataset's own annotator: the side that holds HH-RLHF's chosen answer."""
    return "a" if row["chosen_side"] == "a" else "b"


def annotator(rule: str) -> Callable[[dict[str, Any]], Verdict]:
    if rule == "hh":
        return hh_label
    judge = RULES[rule]
    return lambda row: judge(row["prompt"], row["a"], row["b"])


def shuffled_pairs(seed: int, limit: int) -> list[dict[str, Any]]:
    """HH rows as pairs with random sides, in a random arrival order."""
    rows, rest = load_hh(HH_FILE, n_train=10**9)
    rows = rows + rest
    rng = random.Random(seed)
    rng.shuffle(rows)
    pairs = []
    for row in rows[:limit]:
        chosen_first = rng.random() < 0.5
        a, b = (row["chosen"], row["rejected"]) if chosen_first else (row["rejected"], row["chosen"])
        pairs.append({"prompt": row["prompt"], "a": a, "b": b, "chosen_side": "a" if chosen_first else "b"})
    return pairs


def examples(pairs: list[dict[str, Any]], verdicts: list[Verdict]) -> list[PreferenceExample]:
    return [
        PreferenceExample(p["prompt"], p[v], p["b" if v == "a" else "a"], id=i)
        for i, (p, v) in enumerate(zip(pairs, verdicts, strict=True))
        if v != "tie"
    ]


class Trainer:
    """Trains a reward model on the verdicts so far and scores texts with it (one scratch folder a run)."""

    def __init__(self, args: argparse.Namespace, seed: int, trainable_layers: int = 0) -> None:
        self.args, self.seed, self.trainable_layers = args, seed, trainable_layers
        self.scratch = Path(tempfile.mkdtemp(prefix="rlhf-active-"))
        self.runs = 0
        self.seconds = 0.0

    def train(self, train: list[PreferenceExample]) -> Any:
        config = RewardConfig(
            epochs=self.args.epochs,
            batch_size=16,
            learning_rate=self.args.learning_rate,
            max_length=self.args.max_length,
            validation_fraction=0.0,
            checkpoint_every=0,
            log_every=1000,
            num_threads=self.args.threads,
            use_cpu=True,
            seed=self.seed,
            trainable_layers=self.trainable_layers,
        )
        self.runs += 1
        start = time.perf_counter()
        folder = self.scratch / f"rm-{self.runs}"
        train_reward_model(train, config, folder)
        scorer = load_reward_scorer(folder, batch_size=64, max_length=self.args.max_length)
        self.seconds += time.perf_counter() - start
        return scorer


def accuracy(scorer: Any, heldout: list[dict[str, Any]], verdicts: list[Verdict]) -> float:
    """Share of the held-out A/B pairs the model ranks the annotator's way."""
    judged = [(p, v) for p, v in zip(heldout, verdicts, strict=True) if v != "tie"]
    scores = scorer.score([(p["prompt"], p["a"]) for p, _ in judged] + [(p["prompt"], p["b"]) for p, _ in judged])
    n = len(judged)
    right = sum((sa > sb) == (v == "a") for (_, v), sa, sb in zip(judged, scores[:n], scores[n:], strict=True))
    return right / n


def run_queue(
    order: str, pool: list[dict[str, Any]], judge: Callable, heldout: tuple[list, list], trainer: Trainer, args
) -> dict[int, float]:
    """Judge ``args.budget`` pairs of ``pool`` in ``order``; the held-out accuracy after each step."""
    pending = list(range(len(pool)))  # arrival order
    judged: list[int] = []
    verdicts: list[Verdict] = []
    curve: dict[int, float] = {}
    scorer = None
    while len(judged) < args.budget:
        window = pending[: args.window]
        if order == "uncertain" and scorer is not None:
            sides = [(pool[i]["prompt"], pool[i][side]) for side in ("a", "b") for i in window]
            scores = scorer.score(sides)
            picked = [window[j] for j in most_uncertain(scores[: len(window)], scores[len(window) :], args.step)]
        else:
            picked = window[: args.step]
        for i in picked:
            pending.remove(i)
            judged.append(i)
            verdicts.append(judge(pool[i]))
        train = examples([pool[i] for i in judged], verdicts)
        if len(train) < 2:
            continue  # nothing to train on yet (all ties)
        scorer = trainer.train(train)
        if len(judged) >= args.first:
            curve[len(judged)] = accuracy(scorer, *heldout)
            print(
                f"    {order:9s} {len(judged):4d} judged, {len(train):4d} A/B: held-out accuracy "
                f"{curve[len(judged)]:.3f}",
                flush=True,
            )
    return curve


def saving(oldest: dict[int, float], uncertain: dict[int, float], budget: int) -> dict[str, Any]:
    """Judgements the uncertain queue needed to match the oldest-first queue's accuracy at ``budget``."""
    target = oldest.get(budget)
    reached = next((n for n in sorted(uncertain) if uncertain[n] >= target), None) if target is not None else None
    return {
        "target_accuracy": target,
        "uncertain_judgements_to_reach_it": reached,
        "saving": None if reached is None else round(1 - reached / budget, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rule", default="on_topic,no_first_person,hh", help="rules of bench/rules.py, or hh")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--budget", type=int, default=400, help="judgements per queue")
    ap.add_argument("--step", type=int, default=50, help="judgements between reward models")
    ap.add_argument("--first", type=int, default=100, help="the first number of judgements measured")
    ap.add_argument("--window", type=int, default=200, help="pending pairs the queue chooses from")
    ap.add_argument("--heldout", type=int, default=400)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--learning-rate", type=float, default=5e-5)
    ap.add_argument("--max-length", type=int, default=192)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    rules = [r.strip() for r in args.rule.split(",") if r.strip()]
    unknown = [r for r in rules if r != "hh" and r not in RULES]
    if unknown:
        raise SystemExit(f"unknown rule {unknown}; choose from hh, {', '.join(RULES)}")
    started, load = time.perf_counter(), os.getloadavg()[0]
    print(f"active learning vs oldest-first: rules {rules}, seeds {args.seeds}, load {load:.2f}", flush=True)
    results: list[dict[str, Any]] = []
    for rule in rules:
        judge = annotator(rule)
        for seed in range(args.seeds):
            pairs = shuffled_pairs(seed, args.heldout + args.budget + args.window * 4)
            heldout_pairs, pool = pairs[: args.heldout], pairs[args.heldout :]
            heldout = (heldout_pairs, [judge(p) for p in heldout_pairs])
            ties = sum(v == "tie" for v in heldout[1]) / len(heldout_pairs)
            print(f"--- rule {rule}, seed {seed}: held-out ties {ties:.0%}", flush=True)
            trainer = Trainer(args, seed)
            curves = {order: run_queue(order, pool, judge, heldout, trainer, args) for order in ("oldest", "uncertain")}
            results.append(
                {
                    "rule": rule,
                    "seed": seed,
                    "heldout_tie_share": round(ties, 3),
                    "oldest": {str(n): round(a, 4) for n, a in curves["oldest"].items()},
                    "uncertain": {str(n): round(a, 4) for n, a in curves["uncertain"].items()},
                    **saving(curves["oldest"], curves["uncertain"], args.budget),
                    "train_s": round(trainer.seconds, 1),
                }
            )
    budgets = sorted({int(n) for r in results for n in r["oldest"]})
    print(f"\n{'rule':<8} {'seed':>4}  " + "  ".join(f"{n:>11}" for n in budgets) + "   saving")
    for r in results:
        nan = float("nan")
        cells = "  ".join(f"{r['oldest'].get(str(n), nan):.3f}/{r['uncertain'].get(str(n), nan):.3f}" for n in budgets)
        print(f"{r['rule']:<8} {r['seed']:>4}  {cells}   {r['saving']}")
    print("(cells: held-out accuracy oldest-first / uncertain after that many judgements)")
    savings = [r["saving"] for r in results if r["saving"] is not None]
    summary = {
        "runs": results,
        "mean_saving": round(statistics.fmean(savings), 3) if savings else None,
        "missed": sum(r["saving"] is None for r in results),
        "budget": args.budget,
        "step": args.step,
        "window": args.window,
        "load_at_start": round(load, 2),
        "total_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
