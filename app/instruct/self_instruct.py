"""SELF-INSTRUCT (Wang et al., 2022): grow a prompt set from a few seeds with the policy itself.

Each request shows the policy a few instructions sampled from the pool (mostly human seeds, some
already kept machine ones, as the paper mixes them) and asks for a new one. What comes back is
cut into candidate lines, and a candidate is kept only if

- its length is within bounds (words and characters),
- it passes format heuristics: starts with a letter, ends like a sentence or a question (not cut
  off), is mostly ASCII text, no chatty preamble ("Here is a new task:"), no talk about tasks or
  lists (the model describing the exercise), no markup or special tokens, and nothing a language
  model cannot act on (images, files, links — the paper's keyword filter), and it reads as a request:
  a question, or an imperative or stated need ("Write …", "Explain …", "I need …"), that carries its
  own input (no "summarise the following text" without the text), and
- its ROUGE-L F-measure against every prompt known so far (the seeds, the other prompts in use and
  the candidates kept before it) is below the threshold (0.7 in the paper), so the set grows in
  diversity rather than in paraphrases.

Everything here is plain Python over a ``GenerationBackend``: the job (``self_instruct_job``) adds
the database, a bench or a notebook can call :func:`generate_instructions` directly.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from app.generation.types import GenerationBackend, Messages, SamplingParams

# Why a candidate was not kept; the job reports counts under these names.
EMPTY, TOO_SHORT, TOO_LONG, BAD_FORMAT, NOT_A_REQUEST, NEEDS_INPUT, UNSUPPORTED, TOO_SIMILAR = (
    "empty",
    "too_short",
    "too_long",
    "bad_format",
    "not_a_request",
    "needs_input",
    "unsupported",
    "too_similar",
)
REASONS = (EMPTY, TOO_SHORT, TOO_LONG, BAD_FORMAT, NOT_A_REQUEST, NEEDS_INPUT, UNSUPPORTED, TOO_SIMILAR)

REQUEST = (
    "Here are some tasks people ask an assistant to do:\n{examples}\n\n"
    "Write one new task that is different from all of these. Reply with the task only."
)
_MARKER = re.compile(
    r"^\s*(?:[-*•]\s*)?(?:\d{1,3}\s*[.):]\s*)?(?:(?:new\s+)?(?:task|instruction|prompt|question|q)\s*\d*\s*[:.-]\s*)?",
    re.IGNORECASE,
)
_PREAMBLE = re.compile(
    r"^(here(?:'s| is| are)|sure|certainly|of course|okay|ok\b|great|fantastic|what an?|excitedly|"
    r"i(?:'d| would) like to|i(?:'ll| will)|let me|as an ai|this task|the task|new task|"
    r"in this task|task\b|answer\b|question\b|response\b)",
    re.IGNORECASE,
)
_META = re.compile(r"\b(tasks?|the (?:list|examples?) above|these examples|the previous ones)\b", re.IGNORECASE)
_UNSUPPORTED = re.compile(
    r"\b(images?|pictures?|photos?|videos?|graphs?|draw(?:ing)?|plot|diagrams?|"
    r"attached|attachments?|files?|https?://|www\.|url|link|audio|recording)\b",
    re.IGNORECASE,
)
# What a request to an assistant opens with when it is not a question: an imperative or a stated need.
_REQUEST_START = re.compile(
    r"^(please |can you |could you |would you |help me |i need |i want |i'd like |i would like |i'm looking for |"
    r"i am looking for |how |what |why |when |where |which |who |is |are |do |does |should |"
    r"(write|explain|give|list|suggest|describe|provide|create|tell|compose|summari[sz]e|rewrite|translate|name|"
    r"recommend|plan|make|compare|find|calculate|convert|check|generate|draft|outline|design|teach|show|share|"
    r"identify|classify|choose|propose|brainstorm|come up|turn|edit|correct|improve|simplify|help|prepare|"
    r"estimate|define|sort|rank|organi[sz]e|imagine|pretend|act as|offer|invent|devise|recall|predict)\b)",
    re.IGNORECASE,
)
# Points at an input the prompt does not carry ("Summarise the following text."), unless a colon brings it.
_NEEDS_INPUT = re.compile(
    r"\b(the following|the given|the above|the process|this (?:text|sentence|paragraph|passage|"
    r"article|list|code|poem|story|email|essay|document|data|table))\b",
    re.IGNORECASE,
)
_MARKUP = re.compile(r"<\||\|>|</?[a-z]+>|\{\{|\}\}|```|\[INST\]")


@dataclass(frozen=True)
class Bounds:
    """How long a kept instruction may be."""

    min_words: int = 4
    max_words: int = 80
    max_chars: int = 600


@dataclass
class Tally:
    """What happened to the candidates: how many, kept, and rejected per reason."""

    requests: int = 0
    generated: int = 0
    kept: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "generated": self.generated,
            "kept": self.kept,
            "rejected": {reason: self.rejected.get(reason, 0) for reason in REASONS},
        }


class _CachedTokenizer:
    """rouge-score's default tokenizer, memoised: every candidate is compared with every prompt, and
    tokenising the same prompt again for each comparison would dominate the cost."""

    def __init__(self) -> None:
        from rouge_score.tokenizers import DefaultTokenizer

        self._tokenize = lru_cache(maxsize=100_000)(DefaultTokenizer(use_stemmer=False).tokenize)

    def tokenize(self, text: str) -> list[str]:
        return self._tokenize(text)


class SimilarityIndex:
    """The texts a candidate must differ from, with the ROUGE-L F-measure of the closest one."""

    def __init__(self, texts: Iterable[str] = ()) -> None:
        from rouge_score.rouge_scorer import RougeScorer

        self._scorer = RougeScorer(["rougeL"], tokenizer=_CachedTokenizer())
        self.texts: list[str] = []
        for text in texts:
            self.add(text)

    def add(self, text: str) -> None:
        self.texts.append(text)

    def closest(self, candidate: str) -> tuple[float, str | None]:
        """(highest ROUGE-L F-measure, the text that scored it) over the index; (0, None) when empty."""
        best, match = 0.0, None
        for text in self.texts:
            score = self._scorer.score(text, candidate)["rougeL"].fmeasure
            if score > best:
                best, match = score, text
        return best, match


def build_request(examples: Sequence[str]) -> Messages:
    """The chat message asking for a new instruction, the examples numbered."""
    listed = "\n".join(f"{i}. {text}" for i, text in enumerate(examples, 1))
    return [{"role": "user", "content": REQUEST.format(examples=listed)}]


def clean_line(line: str) -> str:
    """A line without list markers ("3.", "- ", "Task 4:"), markdown emphasis and wrapping quotes."""
    text = _MARKER.sub("", line.replace("**", "").replace("__", "").strip(), count=1).strip()
    if len(text) >= 2 and text[0] in "\"'“" and text[-1] in "\"'”":
        text = text[1:-1].strip()
    return " ".join(text.split())


def extract_candidates(output: str, limit: int = 3) -> list[str]:
    """Up to ``limit`` candidate instructions from one response: its first non-empty lines, cleaned
    (a small model often answers with a numbered list, of which each line is a candidate)."""
    lines = [clean_line(line) for line in output.splitlines()]
    return [line for line in lines if line][:limit]


def format_problem(text: str) -> str | None:
    """Which format heuristic ``text`` fails (a reason constant), or None."""
    if not text[0].isalpha():
        return BAD_FORMAT
    if not text.rstrip("\"')”’").endswith((".", "?", "!")):
        return BAD_FORMAT  # cut off by max_new_tokens, or a heading rather than a request
    ascii_share = sum(1 for ch in text if ch.isascii()) / len(text)
    if ascii_share < 0.95 or _MARKUP.search(text) or _PREAMBLE.match(text) or _META.search(text):
        return BAD_FORMAT
    if _UNSUPPORTED.search(text):
        return UNSUPPORTED
    if not text.rstrip("\"')”’").endswith("?") and not _REQUEST_START.match(text):
        return NOT_A_REQUEST  # a statement or a title ("The beauty of a bicycle."), not something to answer
    if _NEEDS_INPUT.search(text) and ":" not in text:
        return NEEDS_INPUT
    return None


def check_candidate(text: str, index: SimilarityIndex, bounds: Bounds, threshold: float) -> str | None:
    """Why ``text`` is not kept (a reason constant), or None when it is; cheap checks first."""
    if not text:
        return EMPTY
    words = len(text.split())
    if words < bounds.min_words:
        return TOO_SHORT
    if words > bounds.max_words or len(text) > bounds.max_chars:
        return TOO_LONG
    problem = format_problem(text)
    if problem is not None:
        return problem
    score, _ = index.closest(text)
    return TOO_SIMILAR if score >= threshold else None


@dataclass(frozen=True)
class Plan:
    """One SELF-INSTRUCT run: how to ask, how many, what to keep."""

    sampling: SamplingParams
    target: int  # stop once this many are kept
    max_candidates: int  # ... or once this many were looked at
    batch_size: int = 16  # requests per generate call
    examples_per_request: int = 4  # instructions shown in each request
    machine_examples: int = 1  # of which at most this many are kept machine-written ones
    candidates_per_response: int = 3
    threshold: float = 0.7
    bounds: Bounds = Bounds()


def sample_examples(rng: random.Random, seeds: Sequence[str], kept: Sequence[str], plan: Plan) -> list[str]:
    """Seeds plus up to ``machine_examples`` kept instructions, shuffled (the paper's 6 + 2 of 8, scaled)."""
    machine = rng.sample(list(kept), min(plan.machine_examples, len(kept)))
    human = rng.sample(list(seeds), min(plan.examples_per_request - len(machine), len(seeds)))
    examples = human + machine
    rng.shuffle(examples)
    return examples


def generate_instructions(
    backend: GenerationBackend,
    seeds: Sequence[str],
    index: SimilarityIndex,
    plan: Plan,
    *,
    rng: random.Random,
    tally: Tally | None = None,
    kept: list[str] | None = None,
    on_batch: Callable[[list[str], Tally], None] | None = None,
) -> list[str]:
    """Ask, filter and keep until ``plan.target`` are kept or ``plan.max_candidates`` were seen.

    ``index`` must hold every existing prompt; kept instructions are added to it (and to ``kept``) as
    they pass, so later candidates are compared with them too. ``on_batch(new, tally)`` is called after
    each batch with what it kept: the job stores them and reports progress there (and may raise to stop).
    Passing a ``tally`` and ``kept`` from an earlier, interrupted run continues it."""
    if not seeds:
        raise ValueError("SELF-INSTRUCT needs at least one seed instruction")
    tally = tally if tally is not None else Tally()
    kept = kept if kept is not None else []
    while tally.kept < plan.target and tally.generated < plan.max_candidates:
        requests = [build_request(sample_examples(rng, seeds, kept, plan)) for _ in range(plan.batch_size)]
        seeded = SamplingParams(
            plan.sampling.temperature, plan.sampling.top_p, plan.sampling.max_new_tokens, rng.randrange(2**31), 1
        )
        outputs = backend.generate(requests, seeded)
        tally.requests += len(requests)
        new = _filter_batch([g.text for g in outputs], index, plan, tally)
        kept.extend(new)
        if on_batch is not None:
            on_batch(new, tally)
    return kept


def _filter_batch(outputs: Sequence[str], index: SimilarityIndex, plan: Plan, tally: Tally) -> list[str]:
    """Candidates of one batch that pass, in order; each kept one joins the index at once."""
    new: list[str] = []
    for output in outputs:
        for candidate in extract_candidates(output, plan.candidates_per_response) or [""]:
            if tally.kept >= plan.target or tally.generated >= plan.max_candidates:
                return new
            tally.generated += 1
            reason = check_candidate(candidate, index, plan.bounds, plan.threshold)
            if reason is None:
                index.add(candidate)
                new.append(candidate)
                tally.kept += 1
            else:
                tally.rejected[reason] += 1
    return new
