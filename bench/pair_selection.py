"""Which pair of a prompt's samples to show annotators, so that a preference of any kind gets pairs to learn from.

A rule that prefers a trait the policy rarely shows says "tie" on most pairs of two plain samples: both
lack the trait. The pool samples k answers per prompt and keeps one pair (``app.pool.diverse``); this bench
measures, for every rule of ``bench/rules.py`` at once, how many of the kept pairs the rule can tell apart
(its *informative share*) under each way of choosing, on the same samples:

- ``first2``: the first two samples, i.e. k = 2 without any choice (what a pool without selection shows);
- ``pool@k``: the pool's own choice among the first k (whole answers first, then the two most unlike by
  character n-gram TF-IDF), as ``most_different`` makes it with the answers' EOS flags;
- ``diverse@k``: the two most unlike among the first k, completeness ignored;
- ``any@k``: the share of prompts where *some* pair of the first k differs under the rule — what a
  selection that knew the rule could reach, the bound for any rule-blind choice.

No choice may know the rule (a team brings its own), so the figure that matters is each strategy's
informative share over all the rules, the rarest traits most. The samples are the starter prompts under the
installed policy's system message, the pool's sampling settings and the closed loop's token budget (48),
cached in ``--cache`` so strategies can be compared again without sampling.

Measured (104 starter prompts × 8 samples at 48 tokens, seed 0; sampling 1,522 s at load 6–9 from other work):

| strategy | shorter | question | list | digit | on_topic | no_first_person | no_preamble | safe | mean |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
| first2 | 96.2 % | 0 | 16.3 % | 23.1 % | 59.6 % | 7.7 % | 1.9 % | 1.0 % | 25.7 % |
| pool@4 (default) | 100 % | 0 | 19.2 % | 26.9 % | 63.5 % | 9.6 % | 1.0 % | 0 | 27.5 % |
| diverse@4 | 100 % | 0 | 19.2 % | 29.8 % | 62.5 % | 9.6 % | 1.0 % | 0 | 27.8 % |
| pool@8 | 98.1 % | 0 | 22.1 % | 29.8 % | 69.2 % | 7.7 % | 3.8 % | 0 | 28.8 % |
| diverse@8 | 98.1 % | 0 | 23.1 % | 30.8 % | 71.2 % | 7.7 % | 3.8 % | 0 | 29.3 % |
| any@4 (bound) | 100 % | 0 | 23.1 % | 39.4 % | 82.7 % | 15.4 % | 2.9 % | 1.9 % | 33.2 % |
| any@8 (bound) | 100 % | 0 | 34.6 % | 56.7 % | 87.5 % | 20.2 % | 7.7 % | 3.8 % | 38.8 % |

So at k = 4 the pool's choice lifts the informative share from 25.7 % to 27.5 % of the 33.2 % that any choice
could reach; k = 8 adds about 1.5 points more at twice the pool's decoding. Other rule-blind measures of
"unlike" were tried on the same samples (character 1–2- and 1–3-grams, binary counts, word unigrams and
bigrams, the odd-one-out against the most typical sample): all within ±2.5 points of the default (mean
26.2–30.3 %, one prompt is 1 point), so none replaces it. What stays out of reach is the gap to the bound,
the prompts where the trait's sample exists but is not the most unlike; online DPO closes it on its own
samples by letting the reward model pick (best vs worst of 8). ``question`` shows no closing "?" in 832
answers cut at 48 tokens: no choice of pair can teach it at this budget.

    .venv/bin/python bench/pair_selection.py                      # 104 prompts × 8 samples (≈ 10 min quiet)
    .venv/bin/python bench/pair_selection.py --budget 128 --samples 8 --cache /tmp/samples-128.json

Ends with one JSON line: per strategy and rule the informative share, and per strategy the mean over rules.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing

from app.config import Settings
from app.generation import SamplingParams, TransformersBackend
from app.pool.diverse import most_different
from app.pool.generate import usable
from app.training.core.convert import convert_default_policy
from bench.answer_lengths import starter_prompts
from bench.generation import DEFAULT_CHECKPOINT
from bench.rules import RULES, prompt_text

Choice = Callable[[list[list[str]], list[list[bool]]], list[tuple[int, int] | None]]


def sample(budget: int, k: int, seed: int, threads: int, batch_size: int) -> dict:
    """k answers to each starter prompt, with the pool's sampling settings and system message."""
    torch.set_num_threads(threads)
    defaults = Settings()
    backend = TransformersBackend.from_path(convert_default_policy(DEFAULT_CHECKPOINT), batch_size=batch_size)
    prompts = starter_prompts(defaults.bootstrap_system_prompt)
    params = SamplingParams(
        temperature=defaults.pool_temperature, top_p=defaults.pool_top_p, max_new_tokens=budget, seed=seed, n=k
    )
    start = time.perf_counter()
    answers = backend.generate(prompts, params)
    return {
        "budget": budget,
        "k": k,
        "seconds": round(time.perf_counter() - start, 1),
        "prompts": [prompt_text(p) for p in prompts],
        "texts": [[a.text for a in answers[i * k : (i + 1) * k]] for i in range(len(prompts))],
        "ended": [[a.finish_reason == "stop" for a in answers[i * k : (i + 1) * k]] for i in range(len(prompts))],
    }


def first_two(groups: list[list[str]], ended: list[list[bool]]) -> list[tuple[int, int] | None]:
    return [(0, 1) if usable(g[0], g[1]) else None for g in groups]


def strategies(k_values: Sequence[int]) -> dict[str, tuple[int, Choice]]:
    """name → (samples it reads, how it chooses)."""
    chosen: dict[str, tuple[int, Choice]] = {"first2": (2, first_two)}
    for k in k_values:
        chosen[f"pool@{k}"] = (k, lambda groups, ended: most_different(groups, usable, ended))
        chosen[f"diverse@{k}"] = (k, lambda groups, ended: most_different(groups, usable))
    return chosen


def informative(rule: Callable[[str, str, str], str], prompt: str, a: str, b: str, rng: random.Random) -> bool:
    """Whether the rule tells the pair apart, with the sides shown in a random order as the pool does."""
    return (rule(prompt, a, b) if rng.random() < 0.5 else rule(prompt, b, a)) != "tie"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=int, default=48, help="most tokens per answer (the closed loop's: 48)")
    parser.add_argument("--samples", type=int, default=8, help="answers sampled per prompt (the largest k compared)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cache", type=Path, help="the samples' file: read when it exists, written after sampling")
    args = parser.parse_args()

    if args.cache and args.cache.exists():
        data = json.loads(args.cache.read_text())
    else:
        print(f"sampling 104 prompts × {args.samples} at ≤ {args.budget} tokens, load {os.getloadavg()[0]:.2f}")
        data = sample(args.budget, args.samples, args.seed, args.threads, args.batch_size)
        if args.cache:
            args.cache.write_text(json.dumps(data))
    k_max = data["k"]
    k_values = [k for k in (4, 8, 16) if k <= k_max]
    print(f"{len(data['prompts'])} prompts × {k_max} samples, ≤ {data['budget']} tokens ({data['seconds']} s)")

    table: dict[str, dict[str, float]] = {}
    for name, (k, choose) in strategies(k_values).items():
        groups, ended = [g[:k] for g in data["texts"]], [e[:k] for e in data["ended"]]
        picks = choose(groups, ended)
        table[name] = {}
        for rule_name, rule in RULES.items():
            rng = random.Random(f"{args.seed}-{rule_name}")
            hits = sum(
                informative(rule, prompt, group[pick[0]], group[pick[1]], rng)
                for prompt, group, pick in zip(data["prompts"], groups, picks, strict=True)
                if pick is not None
            )
            table[name][rule_name] = hits / len(groups)
    for k in k_values:
        table[f"any@{k}"] = {
            rule_name: sum(
                any(rule(p, a, b) != "tie" for a, b in itertools.combinations(group[:k], 2))
                for p, group in zip(data["prompts"], data["texts"], strict=True)
            )
            / len(data["texts"])
            for rule_name, rule in RULES.items()
        }

    print(f"{'strategy':<12}" + "".join(f"{r:>17}" for r in RULES) + f"{'mean':>8}")
    for name, shares in table.items():
        mean = sum(shares.values()) / len(shares)
        print(f"{name:<12}" + "".join(f"{s:>17.1%}" for s in shares.values()) + f"{mean:>8.1%}")
    print("(the share of prompts whose kept pair the rule tells apart; any@k: some pair of the k differs)")
    summary = {
        "budget": data["budget"],
        "samples": k_max,
        "prompts": len(data["prompts"]),
        "informative_share": {n: {r: round(s, 3) for r, s in shares.items()} for n, shares in table.items()},
        "mean_over_rules": {n: round(sum(s.values()) / len(s), 3) for n, s in table.items()},
        "sampling_seconds": data["seconds"],
        "load": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
