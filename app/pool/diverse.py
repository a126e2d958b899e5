"""Which two of a prompt's k samples go to the annotators: the two that differ most.

A preference for a trait the policy rarely shows (an answer that ends with a question, a numbered list,
a number) gives nothing to learn from when both answers of a pair lack it: the pair is a tie. Sampling k
answers per prompt and judging the two most unlike each other raises the share of pairs where one answer
has the trait and the other does not, whatever the trait is: nothing here knows any rule.

"Unlike" is the cosine distance between character n-gram TF-IDF vectors, with the document frequencies
taken over the whole generation batch (every sample of every prompt). An n-gram most answers share
(the prompt's topic words, "the", "Sure") weighs little; one few answers have (a "?" at the end, "1. ",
a digit, a line break) weighs much, so the sample that shows a rare trait lies far from its siblings.
Character n-grams on the raw text (case and whitespace kept) see form and punctuation as well as words;
each text is wrapped in start and end marks first, so how an answer opens ("Sure", a number) and how
it closes (a "?", a cut-off word) are n-grams of their own, as readers notice them.
scikit-learn's vectoriser does the counting; the pairwise distances of k ≤ 16 vectors are a k×k product.

The selection changes which pairs are judged, not how any answer is made: each answer is still one
sample of the policy. Cross-version pairs (the evaluation of a new policy against an old) are left as
they are, one sample from each version, so win rates stay unbiased.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.feature_extraction.text import TfidfVectorizer

START, END = "\x02", "\x03"  # control characters no answer text contains (start / end of text)
NGRAMS = (1, 4)  # single characters catch punctuation and digits; up to 4 catch short words and markers


def most_different(
    groups: Sequence[Sequence[str]],
    usable: Callable[[str, str], bool],
    complete: Sequence[Sequence[bool]] | None = None,
    chances: Sequence[np.ndarray | None] | None = None,
) -> list[tuple[int, int] | None]:
    """Per group, the indices (i < j) of the two texts farthest apart among the usable pairs, or None when
    no pair of the group is usable. Ties go to the lowest (i, j), so a batch's choice is reproducible.

    ``complete`` (per text: it ended at EOS, not at the token budget) makes a pair of complete answers win
    over any pair with a cut-off one, and a pair with one over a pair with none: annotators judge whole
    answers where the samples allow it, and the most different of those. ``chances`` (per group, a k×k
    matrix or None) ranks a group's pairs by it before difference: the pool's estimate that annotators
    will decide the pair rather than call it a tie (:mod:`app.pool.told_apart`)."""
    texts = [text for group in groups for text in group]
    if not any(text.strip() for text in texts):
        return [None] * len(groups)
    vectors = _vectorise(texts)
    chosen: list[tuple[int, int] | None] = []
    start = 0
    for g, group in enumerate(groups):
        block = vectors[start : start + len(group)]
        start += len(group)
        similarity = (block @ block.T).toarray()  # rows are L2-normalised: the product is the cosine similarity
        whole = complete[g] if complete is not None else [True] * len(group)
        chance = chances[g] if chances is not None and chances[g] is not None else np.zeros(similarity.shape)
        candidates = [
            (-(whole[i] + whole[j]), -chance[i, j], similarity[i, j], i, j)
            for i in range(len(group))
            for j in range(i + 1, len(group))
            if usable(group[i], group[j])
        ]
        chosen.append(min(candidates)[3:] if candidates else None)
    return chosen


def _vectorise(texts: list[str]) -> csr_matrix:
    vectoriser = TfidfVectorizer(analyzer="char", ngram_range=NGRAMS, lowercase=False, sublinear_tf=True)
    return csr_matrix(vectoriser.fit_transform([f"{START}{text.strip()}{END}" for text in texts]))
