"""Sampling the two responses of each planned pair, and keeping only pairs worth judging.

All same-version pairs of a batch go to the backend in one call with ``n=k``
(``RLHF_POOL_SAMPLES_PER_PROMPT``): the k samples of a prompt are adjacent rows of one decoding batch
that share the prompt's prefill (see ``TransformersBackend``), drawn from one seeded call, so they differ
yet the batch is reproducible; the pair kept is the two samples that differ most
(:mod:`app.pool.diverse`), so a trait the policy rarely shows reaches the annotators more often.
Cross-version pairs need two models: one ``n=1`` call to the promoted policy for all of them, one to
each other version. Two responses that are identical (ignoring case and whitespace) or an empty one
teach an annotator nothing: a prompt without a usable pair among its k is sampled again with a fresh
seed, up to ``attempts`` times, then dropped.

Nothing here touches the database: ``Candidate`` rows go to ``app.pool.service.store_pairs``.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Protocol

import numpy as np

from app.generation.types import Generation, Messages, SamplingParams
from app.pool.diverse import most_different
from app.pool.plan import PlannedPair, PolicyRef
from app.pool.told_apart import DecisionModel


class Generator(Protocol):
    """What the pool needs of a generation service (``WarmClient`` in production)."""

    def generate(self, config: dict[str, Any], prompts: list[Messages], params: SamplingParams) -> Any: ...  # a Reply


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    max_new_tokens: int


@dataclass(frozen=True)
class Sample:
    """One response and how it was made (stored as the response's generation parameters)."""

    version: PolicyRef
    generation: Generation
    seed: int  # the call's seed: transformers draws sample k of one seeded call, OpenAI sends seed + k
    index: int  # k: which of the call's n samples of this prompt
    n: int

    def params(self, sampling: Sampling, attempt: int) -> dict[str, Any]:
        return {
            "temperature": sampling.temperature, "top_p": sampling.top_p, "max_new_tokens": sampling.max_new_tokens,
            "seed": self.seed, "sample": self.index, "n": self.n, "backend": self.version.backend,
            "attempt": attempt, **self.generation.record(),
        }  # fmt: skip


@dataclass(frozen=True)
class Candidate:
    item: PlannedPair
    a: Sample
    b: Sample
    attempt: int  # 1 when the first sampling was usable


@dataclass
class BatchStats:
    dropped: int = 0  # prompts given up after every attempt
    regenerated: int = 0  # prompts sampled again
    tokens: int = 0
    load_seconds: float = 0.0
    generate_seconds: float = 0.0
    pids: set[int] = field(default_factory=set)  # warm processes that answered


def normalise(text: str) -> str:
    return " ".join(text.split()).casefold()


def usable(a: str, b: str) -> bool:
    """Both responses say something, and not the same thing."""
    return bool(a.strip()) and bool(b.strip()) and normalise(a) != normalise(b)


@dataclass(eq=False)  # it holds a live generator and an RNG: two samplers are the same only if one object
class PairSampler:
    """Samples pairs for planned items from the promoted policy (A) and, for cross pairs, another (B)."""

    generator: Generator
    policy: PolicyRef
    sampling: Sampling
    _: KW_ONLY
    rng: random.Random
    attempts: int
    samples_per_prompt: int = 2  # k ≥ 2 samples of a same-version pair's prompt
    # What annotators tell apart (app.pool.told_apart), refitted per batch: steers the prompts it can.
    decisions: DecisionModel | None = None
    steered: int = 0  # groups of k it chose a pair for, over the sampler's life (a re-sampled prompt counts again)

    def run(self, items: list[PlannedPair]) -> tuple[list[Candidate], BatchStats]:
        """Candidates for as many items as could be made usable, in the items' order."""
        stats = BatchStats()
        done: dict[int, Candidate] = {}
        todo = list(enumerate(items))
        for attempt in range(1, self.attempts + 2):
            if not todo:
                break
            if attempt > 1:
                stats.regenerated += len(todo)
            sampled = self._sample([item for _, item in todo], stats)
            retry = []
            for (position, item), pair in zip(todo, sampled, strict=True):
                if pair is not None:
                    done[position] = Candidate(item=item, a=pair[0], b=pair[1], attempt=attempt)
                else:
                    retry.append((position, item))
            todo = retry
        stats.dropped = len(todo)
        return [done[p] for p in sorted(done)], stats

    def _sample(self, items: list[PlannedPair], stats: BatchStats) -> list[tuple[Sample, Sample] | None]:
        """(A, B) samples for each item, None where they are not usable: same-version items in one n=k call
        (the most different usable pair of each prompt's k), cross items one call per version."""
        result: list[tuple[Sample, Sample] | None] = [None] * len(items)
        same = [i for i, item in enumerate(items) if item.other is None]
        if same:
            k = self.samples_per_prompt
            samples = self._call(self.policy, [items[i].messages for i in same], n=k, stats=stats)
            groups = [samples[k * j : k * (j + 1)] for j in range(len(same))]
            texts = [[s.generation.text for s in group] for group in groups]
            picks = most_different(
                texts,
                usable,
                [[s.generation.finish_reason == "stop" for s in group] for group in groups],
                self._chances(texts),
            )
            for i, group, pick in zip(same, groups, picks, strict=True):
                result[i] = None if pick is None else (group[pick[0]], group[pick[1]])
        by_version: dict[int, list[int]] = defaultdict(list)
        for i, item in enumerate(items):
            if item.other is not None:
                by_version[item.other.id].append(i)
        for indices in by_version.values():
            other = items[indices[0]].other
            assert other is not None
            a_side = self._call(self.policy, [items[i].messages for i in indices], n=1, stats=stats)
            b_side = self._call(other, [items[i].messages for i in indices], n=1, stats=stats)
            for j, i in enumerate(indices):
                a, b = a_side[j], b_side[j]
                result[i] = (a, b) if usable(a.generation.text, b.generation.text) else None
        return result

    def _chances(self, texts: list[list[str]]) -> list[np.ndarray | None] | None:
        """The decision model's k×k chances for each group holding a pair it expects decided; the rest keep
        the plain most-different choice, so differences the verdicts have not shown still get judged."""
        if self.decisions is None:
            return None
        steered = [self.decisions.steering(group) for group in texts]
        self.steered += sum(1 for matrix in steered if matrix is not None)
        return steered

    def _call(self, version: PolicyRef, prompts: list[Messages], *, n: int, stats: BatchStats) -> list[Sample]:
        seed = self.rng.getrandbits(31)
        params = SamplingParams(
            temperature=self.sampling.temperature,
            top_p=self.sampling.top_p,
            max_new_tokens=self.sampling.max_new_tokens,
            seed=seed,
            n=n,
        )
        reply = self.generator.generate(version.config, prompts, params)
        stats.load_seconds += reply.load_seconds
        stats.generate_seconds += reply.seconds
        stats.pids.add(reply.pid)
        stats.tokens += sum(g.token_count for g in reply.generations)
        return [
            Sample(version=version, generation=g, seed=seed, index=k % n, n=n) for k, g in enumerate(reply.generations)
        ]
