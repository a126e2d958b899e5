"""Scoring (prompt, response) pairs with a registered reward model or classifier.

Loading a model takes far longer than scoring a batch, so each process keeps the few it used last
(:class:`ScorerCache`, least recently used out) and every caller — the score API, the dashboard's
agreement figure, a PPO job — shares them. One model scores one batch at a time (a lock per scorer):
a tokenizer is not safe to share between threads, and two batches at once would only fight for the
same cores.

    scores = score_rewards(db, version_id=3, items=[(messages, "Sure! First …")])
    report = agreement(db, version_id=3)  # the RM against judgements made after it was trained
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.orm import Session

from app.errors import Conflict
from app.finetune.core.dataset import DataFilters, JudgedPair, judged_pairs
from app.registry import service as registry
from app.registry.models import ModelKind, ModelStatus, ModelVersion
from app.training.core.data import Prompt
from app.training.core.rank import OnEachRank

MAX_CACHED = 3  # models per process; a MiniLM scorer holds ~100 MB, a 135M policy backbone ~600 MB
USABLE = (ModelStatus.ready, ModelStatus.promoted)


class PairScorer(Protocol):
    """Anything that scores (prompt, response) pairs; RewardScorer is one, a test's stub another."""

    def score(self, pairs: Sequence[tuple[Prompt, str]]) -> list[Any]: ...


class _Locked:
    """A scorer that scores one batch at a time."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer
        self.lock = threading.Lock()

    @property
    def labels(self) -> list[str]:
        return self.scorer.labels

    def score(self, pairs: Sequence[tuple[Prompt, str]]) -> list[Any]:
        with self.lock:
            return self.scorer.score(pairs)

    def probabilities(self, pairs: Sequence[tuple[Prompt, str]]) -> Any:
        """A classifier's P(label = 1) tensor [N, H] (what a PPO safety penalty reads)."""
        with self.lock:
            return self.scorer.probabilities(pairs)


class ScorerCache:
    """Loaded scorers keyed by (kind, version id, folder), the least recently used dropped first."""

    def __init__(self, max_entries: int = MAX_CACHED) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, int, str], _Locked] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, version: ModelVersion, load: Callable[[str], Any]) -> Any:
        """The scorer of ``version``, loading it with ``load(path)`` on first use (outside the lock)."""
        key = (version.kind.value, version.id, version.path)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        scorer = _Locked(load(version.path))
        with self._lock:
            scorer = self._entries.setdefault(key, scorer)  # a concurrent first use keeps one copy
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return scorer

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


CACHE = ScorerCache()  # the process's scorers: loaded lazily, never at import


def usable_version(db: Session, version_id: int, kind: ModelKind) -> ModelVersion:
    """A ``kind`` version that can score: ready or promoted, with its folder present."""
    version = registry.get_version(db, version_id, kind=kind)
    if version.status not in USABLE:
        raise Conflict(f"{version.name} is {version.status.value}; only a ready version scores", field="version_id")
    if not version.path or not (Path(version.path) / "head.json").is_file():
        raise Conflict(f"{version.name} has no model folder on this server", field="version_id")
    return version


def scorer_of(version: ModelVersion) -> Any:
    """The (cached) scorer of a usable reward or classifier version, loaded without a database session:
    a job resolves the version in a short transaction, then loads (seconds) holding no lock."""
    if version.kind is ModelKind.reward:
        from app.training.reward.scoring import RewardScorer as loader
    else:
        from app.training.classifier.scoring import ClassifierScorer as loader
    return CACHE.get(version, loader)


SCORER_CLASSES = {  # what loads a version's folder, by import path: a training process of its own loads it too
    ModelKind.reward: "app.training.reward.scoring:RewardScorer",
    ModelKind.classifier: "app.training.classifier.scoring:ClassifierScorer",
}


def scorer_recipe(version: ModelVersion) -> OnEachRank:
    """The scorer of a usable reward or classifier version as a trainer argument: loaded by the job process
    when it trains there, else by each training process on its own device (a loaded model does not travel
    between processes); the job process holds no copy it does not use."""
    return OnEachRank(SCORER_CLASSES[version.kind], (version.path,))


def reward_scorer(db: Session, *, version_id: int) -> Any:
    """The (cached) RewardScorer of a reward version (``score(pairs)``)."""
    return scorer_of(usable_version(db, version_id, ModelKind.reward))


def classifier_scorer(db: Session, *, version_id: int) -> Any:
    """The (cached) ClassifierScorer of a classifier version (``labels``, ``score``, ``probabilities``)."""
    return scorer_of(usable_version(db, version_id, ModelKind.classifier))


def score_rewards(db: Session, *, version_id: int, items: Sequence[tuple[Prompt, str]]) -> list[float]:
    """r(x, y) for each (prompt, response), in order, batched by the scorer."""
    return reward_scorer(db, version_id=version_id).score(list(items))


def score_classifier(db: Session, *, version_id: int, items: Sequence[tuple[Prompt, str]]) -> list[dict[str, float]]:
    """P(label = 1) per head for each (prompt, response), in order."""
    return classifier_scorer(db, version_id=version_id).score(list(items))


@dataclass(frozen=True)
class Agreement:
    """How often the reward model ranks a judged pair the annotator's way."""

    judgements: int  # A/B judgements compared
    agreed: int  # those where r(chosen) > r(rejected)
    since: datetime | None  # the judgements counted were made at or after this time

    @property
    def rate(self) -> float | None:
        """agreed / judgements; None when nothing was compared."""
        return self.agreed / self.judgements if self.judgements else None


def agreement_of(rows: Sequence[JudgedPair], scorer: PairScorer, since: datetime | None = None) -> Agreement:
    """Score each judged pair's two sides in one batch; count the pairs ranked as the human did."""
    if not rows:
        return Agreement(0, 0, since)
    pairs = [(row.messages, row.chosen) for row in rows] + [(row.messages, row.rejected) for row in rows]
    scores = scorer.score(pairs)
    n = len(rows)
    agreed = sum(1 for chosen, rejected in zip(scores[:n], scores[n:], strict=True) if chosen > rejected)
    return Agreement(n, agreed, since)


def agreement(
    db: Session,
    *,
    version_id: int,
    since: datetime | None = None,
    filters: DataFilters = DataFilters(),
    scorer: PairScorer | None = None,
) -> Agreement:
    """The reward version's agreement with the A/B judgements made after it was trained (or after
    ``since``, when later): held-out human data it never saw. Ties and both-bad are not counted."""
    version = registry.get_version(db, version_id, kind=ModelKind.reward)
    start = max(version.created_at, since) if since is not None else version.created_at
    if filters.since is not None and filters.since > start:
        start = filters.since
    rows = judged_pairs(db, DataFilters(filters.prompt_set_ids, filters.annotator_ids, start, filters.until))
    if scorer is None:
        scorer = reward_scorer(db, version_id=version_id)
    return agreement_of(rows, scorer, start)
