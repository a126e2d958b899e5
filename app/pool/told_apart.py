"""What annotators tell apart, learned from their recent verdicts: the pool's answer to a sea of ties.

A preference for a trait the policy rarely shows (an exclamation, an example, a closing question) makes
most judged pairs ties: both answers lack the trait, the annotator cannot choose, and the reward model
gets nothing to learn from. Pairing the two most different of k samples (:mod:`app.pool.diverse`)
raises the odds that one answer of a pair shows the trait, but "different" is blind to what the
annotators care about. Their verdicts say it: a difference they care about turns up in the pairs they
decided (A or B) and seldom in the pairs they called a tie. So, from the latest :data:`RECENT`
judgements, a logistic regression learns which character n-grams one answer has and the other lacks
(the pair's symmetric difference, the same features :mod:`app.pool.diverse` counts) in decided pairs
rather than tied ones (L1-sparse: a few differences explain a taste), and predicts for each possible
pair of a prompt's samples whether annotators will decide it. While ties are the majority
(:data:`ACTIVE_TIE_SHARE`), a prompt whose samples hold a pair the model expects decided
(:data:`STEER_CHANCE`) gets that pair; the remaining prompts keep the most different pair, so a difference
the verdicts have not shown yet can still reach annotators. (Steering every other prompt instead, as
before, judged as few decided pairs as random pairing would: under a trait one answer in fifty shows,
only the prompts among 8 samples holding it can give a decided pair, and half of those were paired
blind.) While nine in ten verdicts are
ties (:data:`WIDEN_TIE_SHARE`), a prompt gets twice the configured k samples (at most :data:`MAX_K`): a
trait one answer in a hundred shows turns up among 8 samples twice as often as among 4. The other way,
while fewer than one verdict in ten is a tie (:data:`NARROW_TIE_SHARE`: a preference that compares, such as
length), a prompt gets half the configured k (at least 2): annotators already decide nearly every pair, so
searching more samples for a pair that differs finds no more decided verdicts, and every sample past the two
judged is generation thrown away.

Nothing here knows any rule or trait, only the verdicts; with few ties (a preference that compares, such
as length, or real annotators' usual mix) it stays out of the way. Each answer is still one sample of
the policy: the choice changes which pairs are judged, never how an answer is written. Off with
``RLHF_POOL_ADAPT_TO_TIES=false``.

The judgements are read through their table's column names, not through ``app.annotation``'s model:
annotation depends on the pool (a judgement is of a pool pair), and the packages stay acyclic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sqlalchemy import column, select, table
from sqlalchemy.orm import Session, aliased

from app.pool.diverse import END, NGRAMS, START
from app.pool.models import Pair, Response

RECENT = 400  # judgements the model learns from: the latest, so it follows the annotators as the policy changes
MIN_DECIDED = 3  # decided pairs before the model is fitted at all
MIN_TIED = 20  # and tied ones: the contrast it learns from
ACTIVE_TIE_SHARE = 0.5  # above this share of ties, the pool steers (STEER_CHANCE says which prompts)
WIDEN_TIE_SHARE = 0.9  # above this, a prompt gets twice the configured k samples
NARROW_TIE_SHARE = 0.1  # below this, half the configured k (at least 2)
MAX_K = 16
# A prompt is steered when some pair of its samples is likelier decided than tied, as the balanced model sees
# it: a pair that shows a difference the decided pairs showed. Below, the model knows nothing of the pair.
STEER_CHANCE = 0.5
DECIDED = frozenset({"a", "b"})  # a tie and "both bad" state no preference between the two

_judgements = table("judgements", column("id"), column("pair_id"), column("choice"))


@dataclass(frozen=True)
class Verdicts:
    """The latest judgements' pairs (A text, B text), split by whether the annotator chose a side."""

    decided: list[tuple[str, str]]
    tied: list[tuple[str, str]]

    @property
    def count(self) -> int:
        return len(self.decided) + len(self.tied)

    @property
    def tie_share(self) -> float:
        return len(self.tied) / self.count if self.count else 0.0


def recent_verdicts(db: Session, *, limit: int = RECENT) -> Verdicts:
    """The latest ``limit`` judgements of ordinary pairs (gold pairs are the project's checks, not the
    annotators' taste), newest first."""
    a, b = aliased(Response), aliased(Response)
    rows = db.execute(
        select(_judgements.c.choice, a.text, b.text)
        .join(Pair, Pair.id == _judgements.c.pair_id)
        .join(a, a.id == Pair.response_a_id)
        .join(b, b.id == Pair.response_b_id)
        .where(Pair.gold_kind.is_(None))
        .order_by(_judgements.c.id.desc())
        .limit(limit)
    ).all()
    decided = [(ta, tb) for choice, ta, tb in rows if choice in DECIDED]
    tied = [(ta, tb) for choice, ta, tb in rows if choice not in DECIDED]
    return Verdicts(decided, tied)


def samples_per_prompt(base: int, verdicts: Verdicts) -> int:
    """The k to sample: twice ``base`` (at most :data:`MAX_K`) while nine in ten recent verdicts are ties, half
    of it (at least 2) while fewer than one in ten are."""
    if verdicts.count < MIN_TIED:
        return base
    if verdicts.tie_share >= WIDEN_TIE_SHARE:
        return max(base, min(2 * base, MAX_K))
    if verdicts.tie_share < NARROW_TIE_SHARE:
        return min(base, max(2, base // 2))
    return base


class DecisionModel:
    """P(annotators decide a pair) from which character n-grams one answer has and the other lacks."""

    def __init__(self, vectoriser: CountVectorizer, classifier: LogisticRegression) -> None:
        self._vectoriser = vectoriser
        self._classifier = classifier

    @classmethod
    def fit(cls, verdicts: Verdicts) -> DecisionModel | None:
        """The model, or None where it should not steer: too few decided or tied pairs to contrast, or
        ties too rare for the pool's plain choice to need help."""
        if len(verdicts.decided) < MIN_DECIDED or len(verdicts.tied) < MIN_TIED:
            return None
        if verdicts.tie_share < ACTIVE_TIE_SHARE:
            return None
        pairs = verdicts.decided + verdicts.tied
        vectoriser = CountVectorizer(analyzer="char", ngram_range=NGRAMS, lowercase=False, binary=True)
        vectoriser.fit(_marked([text for pair in pairs for text in pair]))
        labels = np.array([1] * len(verdicts.decided) + [0] * len(verdicts.tied))
        # Balanced: the rare decided pairs count as much as the many ties, or "tie" would always be the answer.
        # L1: a taste is a few differences among the thousands two answers show; with a handful of decided
        # pairs an L2 fit spreads its weight over their incidental differences (on synthetic verdicts, 3
        # decided pairs: ranking AUC 0.63-0.81 with L2 at any C, 1.0 with L1).
        classifier = LogisticRegression(class_weight="balanced", solver="liblinear", l1_ratio=1.0)
        classifier.fit(_differences(vectoriser, pairs), labels)
        return cls(vectoriser, classifier)

    def chances(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """P(decided) of each (A, B)."""
        if not pairs:
            return np.zeros(0)
        return self._classifier.predict_proba(_differences(self._vectoriser, pairs))[:, 1]

    def steering(self, group: Sequence[str]) -> np.ndarray | None:
        """The group's :meth:`pair_chances` when some pair of it reaches :data:`STEER_CHANCE`, else None:
        the pool then pairs the most different samples, as it does without a model."""
        if len(group) < 2:
            return None
        matrix = self.pair_chances(group)
        return matrix if matrix.max() >= STEER_CHANCE else None

    def pair_chances(self, group: Sequence[str]) -> np.ndarray:
        """The k×k matrix of P(decided) for every two texts of one prompt's k samples (the diagonal 0)."""
        k = len(group)
        index = [(i, j) for i in range(k) for j in range(i + 1, k)]
        values = self.chances([(group[i], group[j]) for i, j in index])
        matrix = np.zeros((k, k))
        for (i, j), value in zip(index, values, strict=True):
            matrix[i, j] = matrix[j, i] = value
        return matrix


def _marked(texts: Sequence[str]) -> list[str]:
    return [f"{START}{text.strip()}{END}" for text in texts]


def _differences(vectoriser: CountVectorizer, pairs: Sequence[tuple[str, str]]) -> csr_matrix:
    """Per pair, which n-grams exactly one of the two answers has (order-free: A/B positions are random)."""
    a = vectoriser.transform(_marked([pair[0] for pair in pairs]))
    b = vectoriser.transform(_marked([pair[1] for pair in pairs]))
    return csr_matrix(abs(a - b))
