"""The simulated annotator's tastes for ``bench/closed_loop.py``: one small pure function per rule.

Each rule takes the prompt (the user's words) and the two answers as shown, A on the left and B on the
right, and returns ``"a"``, ``"b"`` or ``"tie"``. Most rules look for one trait and prefer the answer
that has it; when both answers have it, or neither does, the rule cannot tell them apart and says
``"tie"``. Ties are no examples for the reward model (Bradley–Terry learns from A/B verdicts only), and
on the evaluation pairs they count half a win to each side, so a rule whose trait is rare in what the
policy writes yields few training pairs and a win rate pulled towards 50 %: the bench reports the tie
share of every rule for that reason.

| rule | kind | prefers the answer that … |
| --- | --- | --- |
| ``shorter`` | length | has fewer characters |
| ``question`` | form | ends with a question mark |
| ``list`` | form | contains a bulleted or numbered list |
| ``digit`` | content | contains a digit |
| ``on_topic`` | content | shares more content words with the prompt |
| ``no_first_person`` | style | never says "I" |
| ``no_preamble`` | style | starts with the answer, not "Sure", "Certainly", "As an AI", … |
| ``safe`` | safety | contains none of the words in ``UNSAFE_WORDS`` |
| ``longer`` | length | has more characters (held out: added after the defaults were chosen) |
| ``second_person`` | style | speaks to the reader: "you", "your" (held out, likewise) |
| ``example`` | content | gives an example: "for example", "for instance", "e.g.", "such as" (held out, later) |
| ``exclaim`` | tone | sounds enthusiastic: has an exclamation mark (held out, later) |
| ``plain_words`` | readability | uses shorter words: fewer letters per word on average (held out, last) |
| ``courteous`` | manner | is courteous: "please", "thank you", "hope this helps", "good luck" (held out, last) |

The last six were written after the policy step's defaults were fixed and were never run while choosing
them (``example`` and ``exclaim`` after the reward jobs' ``min_steps`` floor too, ``courteous`` and
``plain_words`` after the reward learned from ties and online DPO's ``min_confidence``): they stand for the
preferences a team brings that the suite does not contain (issue 15's second acceptance point), so their
figures say how the defaults carry, not how well they were fitted.

The annotator also labels each answer's quality and safety (the judgement API requires both). Under
every rule but ``safe`` it marks both answers good and safe, as the bench always has. Under ``safe``
it marks an answer unsafe exactly when the rule finds a listed word in it (:func:`labels`), so the
labels can train a ``classifier`` whose P(unsafe) is PPO's safety penalty (:data:`SAFETY_RULES`).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Literal

Verdict = Literal["a", "b", "tie"]
Rule = Callable[[str, str, str], Verdict]  # (prompt, answer A, answer B) -> verdict
Labels = dict[str, dict[str, str]]  # {"A": {"quality": "good", "safety": "safe"}, "B": {...}}

# Words whose presence makes an answer unsafe to the simulated annotator: violence, abuse, drugs. Chosen
# so that a small chat model says one now and then ("kill the bacteria", "I hate it when", "a dead
# battery"): the point is a safety label that is sometimes "unsafe", not a real content policy.
UNSAFE_WORDS = frozenset(
    {
        "kill",
        "kills",
        "killed",
        "killing",
        "murder",
        "weapon",
        "weapons",
        "gun",
        "guns",
        "bomb",
        "bombs",
        "attack",
        "attacks",
        "hate",
        "hates",
        "hated",
        "stupid",
        "idiot",
        "idiots",
        "dumb",
        "drug",
        "drugs",
        "poison",
        "poisonous",
        "die",
        "dies",
        "died",
        "dead",
        "death",
        "blood",
        "hurt",
        "violence",
        "violent",
        "steal",
        "fight",
    }
)

# Openings that put something before the answer: agreement, politeness, a disclaimer, praise of the question.
PREAMBLES = (
    "sure",
    "certainly",
    "of course",
    "absolutely",
    "okay",
    "ok",
    "alright",
    "as an ai",
    "as a language model",
    "as an assistant",
    "great question",
    "good question",
    "what a great",
    "that's a great",
    "hello",
    "hi",
    "hey",
    "i'd be happy",
    "i would be happy",
    "i'm happy to",
    "happy to help",
    "i'm glad",
    "glad you asked",
    "thank you for",
    "thanks for",
)
_PREAMBLE = re.compile(r"(?:" + "|".join(re.escape(p) for p in PREAMBLES) + r")\b")

# Words that say nothing about a topic: function words and the verbs and nouns prompts ask with.
_STOPWORD_TEXT = """
a about above after again against all also am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have having
he her here hers herself him himself his how if in into is it its itself just let me more most my myself
no nor not now of off on once only or other our ours ourselves out over own same she should so some such
than that the their theirs them themselves then there these they this those through to too under until up
very was we were what when where which while who whom why will with would you your yours yourself
yourselves one two get got make made use used like want need know give tell explain describe suggest
write list please help idea ideas way ways thing things simple good best better really much many well
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+•]|\d{1,3}[.)])[ \t]+\S", re.MULTILINE)
_FIRST_PERSON = re.compile(r"\bI\b")  # case-sensitive: the pronoun, also in I'm, I've, I'd, I'll
_SECOND_PERSON = re.compile(r"\b(?:you|your|yours|yourself|yourselves)\b", re.IGNORECASE)  # and you're, you'll
_EXAMPLE = re.compile(r"\b(?:for example|for instance|such as|e\.g\.)", re.IGNORECASE)
_COURTESY = re.compile(
    r"\b(?:please|thank you|thanks|hope (?:this|that|it) helps|good luck|feel free|best wishes)\b", re.IGNORECASE
)


def prefer_trait(has_a: bool, has_b: bool) -> Verdict:
    """The side that has the trait wins; both or neither: ``"tie"``."""
    if has_a == has_b:
        return "tie"
    return "a" if has_a else "b"


def prefer_more(score_a: float, score_b: float) -> Verdict:
    """The side with the higher score wins; equal scores: ``"tie"``."""
    if score_a == score_b:
        return "tie"
    return "a" if score_a > score_b else "b"


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def _stem(word: str) -> str:
    """A crude plural stripper, so "herbs" meets "herb" and "berries" meets "berry"."""
    word = word.removesuffix("'s")
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def content_words(text: str) -> set[str]:
    """The text's words of three letters or more that are not stopwords nor contractions ("don't"),
    lower-cased and de-pluralised."""
    stems = {w: _stem(w) for w in _words(text)}
    return {s for w, s in stems.items() if len(s) >= 3 and "'" not in s and w not in STOPWORDS and s not in STOPWORDS}


def is_unsafe(text: str) -> bool:
    """Whether the text contains a word of :data:`UNSAFE_WORDS` (whole words, any case)."""
    return any(w in UNSAFE_WORDS for w in _words(text))


# --- the rules: (prompt, A, B) -> "a" | "b" | "tie"
def prefers_shorter(prompt: str, a: str, b: str) -> Verdict:
    """length: the shorter answer wins (characters); a tie only when both are exactly as long."""
    return "tie" if len(a) == len(b) else ("a" if len(a) < len(b) else "b")


# --- the traits: what a trait rule prefers, one predicate of an answer each
def ends_with_question(text: str) -> bool:
    return text.rstrip().endswith("?")


def has_list(text: str) -> bool:
    return bool(_LIST_ITEM.search(text))


def has_digit(text: str) -> bool:
    return any(c in "0123456789" for c in text)


def no_first_person(text: str) -> bool:
    return not _FIRST_PERSON.search(text)


def addresses_reader(text: str) -> bool:
    return bool(_SECOND_PERSON.search(text.replace("\u2019", "'")))


def gives_example(text: str) -> bool:
    return bool(_EXAMPLE.search(text))


def exclaims(text: str) -> bool:
    return "!" in text or "\uff01" in text  # and the full-width mark


def courteous(text: str) -> bool:
    return bool(_COURTESY.search(text.replace("\u2019", "'")))


def direct_opening(text: str) -> bool:
    """No preamble of :data:`PREAMBLES` at the start (case and leading punctuation ignored)."""
    opening = re.sub(r"^[\W_]+", "", text.lower().replace("\u2019", "'"))
    return not _PREAMBLE.match(opening)


def is_safe(text: str) -> bool:
    return not is_unsafe(text)


def prefers_question(prompt: str, a: str, b: str) -> Verdict:
    """form: the answer that ends with a question mark (trailing spaces aside) wins; both or neither tie."""
    return prefer_trait(ends_with_question(a), ends_with_question(b))


def prefers_list(prompt: str, a: str, b: str) -> Verdict:
    """form: the answer with a list wins — a line starting with a bullet (``-``, ``*``, ``+``, ``•``) or a
    number (``1.``, ``2)``) followed by text; both or neither tie."""
    return prefer_trait(has_list(a), has_list(b))


def prefers_digit(prompt: str, a: str, b: str) -> Verdict:
    """content: the answer containing a digit 0-9 (a quantity, a time, a step number) wins; both or neither tie."""
    return prefer_trait(has_digit(a), has_digit(b))


def prefers_on_topic(prompt: str, a: str, b: str) -> Verdict:
    """content: the answer sharing more distinct content words with the prompt wins (:func:`content_words`:
    stopwords dropped, plurals folded); the same count — zero on both sides included — ties."""
    topic = content_words(prompt)
    return prefer_more(len(topic & content_words(a)), len(topic & content_words(b)))


def prefers_no_first_person(prompt: str, a: str, b: str) -> Verdict:
    """style: the answer that never uses the pronoun "I" (nor I'm, I've, …) wins; both or neither use it: tie."""
    return prefer_trait(no_first_person(a), no_first_person(b))


def prefers_no_preamble(prompt: str, a: str, b: str) -> Verdict:
    """style: the answer that starts with the answer wins over one that opens with a preamble of
    :data:`PREAMBLES` ("Sure", "Certainly", "Of course", "As an AI", "Great question", …; case and
    leading punctuation ignored); both or neither open so: tie."""
    return prefer_trait(direct_opening(a), direct_opening(b))


def prefers_safe(prompt: str, a: str, b: str) -> Verdict:
    """safety: the answer without any word of :data:`UNSAFE_WORDS` wins over one with such a word; both safe
    or both unsafe tie. The annotator's safety labels say the same (:func:`labels`)."""
    return prefer_trait(is_safe(a), is_safe(b))


def prefers_longer(prompt: str, a: str, b: str) -> Verdict:
    """length: the longer answer wins (characters); a tie only when both are exactly as long. Held out."""
    return prefers_shorter(prompt, b, a)


def prefers_second_person(prompt: str, a: str, b: str) -> Verdict:
    """style: the answer that speaks to the reader ("you", "your", "yourself", any case) wins; both or
    neither: tie. Held out."""
    return prefer_trait(addresses_reader(a), addresses_reader(b))


def prefers_example(prompt: str, a: str, b: str) -> Verdict:
    """content: the answer that gives an example ("for example", "for instance", "such as", "e.g.", any case)
    wins; both or neither: tie. Held out."""
    return prefer_trait(gives_example(a), gives_example(b))


def prefers_exclaim(prompt: str, a: str, b: str) -> Verdict:
    """tone: the enthusiastic answer, one with an exclamation mark, wins; both or neither: tie. Held out."""
    return prefer_trait(exclaims(a), exclaims(b))


def mean_word_length(text: str) -> float:
    """Letters per word (apostrophes aside); an answer without a word scores infinite, so it never wins."""
    words = _words(text)
    return sum(len(w.replace("'", "")) for w in words) / len(words) if words else math.inf


def prefers_plain_words(prompt: str, a: str, b: str) -> Verdict:
    """readability: the answer whose words are shorter on average (letters per word) wins, as plain-language
    guides ask; the same average ties. It compares, like ``shorter``, so nearly every pair is decided. Held
    out, written last."""
    return prefer_more(-mean_word_length(a), -mean_word_length(b))


def prefers_courteous(prompt: str, a: str, b: str) -> Verdict:
    """manner: the courteous answer wins, one that says "please", "thank you"/"thanks", "hope this helps",
    "good luck", "feel free" or "best wishes" (any case); both or neither: tie. Held out, written last."""
    return prefer_trait(courteous(a), courteous(b))


RULES: dict[str, Rule] = {
    "shorter": prefers_shorter,
    "question": prefers_question,
    "list": prefers_list,
    "digit": prefers_digit,
    "on_topic": prefers_on_topic,
    "no_first_person": prefers_no_first_person,
    "no_preamble": prefers_no_preamble,
    "safe": prefers_safe,
    "longer": prefers_longer,
    "second_person": prefers_second_person,
    "example": prefers_example,
    "exclaim": prefers_exclaim,
    "courteous": prefers_courteous,
    "plain_words": prefers_plain_words,
}
KINDS: dict[str, str] = {
    "shorter": "length",
    "question": "form",
    "list": "form",
    "digit": "content",
    "on_topic": "content",
    "no_first_person": "style",
    "no_preamble": "style",
    "safe": "safety",
    "longer": "length",
    "second_person": "style",
    "example": "content",
    "exclaim": "tone",
    "courteous": "manner",
    "plain_words": "readability",
}
# The trait each trait rule prefers. A rule that compares (shorter, on_topic) has none: some answer beats
# nearly any other, so its win rate can approach 100 %.
TRAITS: dict[str, Callable[[str], bool]] = {
    "question": ends_with_question,
    "list": has_list,
    "digit": has_digit,
    "no_first_person": no_first_person,
    "no_preamble": direct_opening,
    "safe": is_safe,
    "second_person": addresses_reader,
    "example": gives_example,
    "exclaim": exclaims,
    "courteous": courteous,
}


def win_ceiling(trait_share: float) -> float:
    """The highest win rate (ties half) any policy can reach against one whose answers have the preferred trait
    this often: against an answer with the trait the best answer only ties, against one without it wins. A
    rule that prefers the absence of something the policy rarely does ("no preamble" where 3 % of answers
    open with one) caps every method near 50 %: the policy had almost nothing to improve."""
    return 1.0 - trait_share / 2.0


# Rules whose annotator sends real safety labels: the loop trains a classifier on them for PPO's penalty.
SAFETY_RULES = frozenset({"safe"})
SAFE_LABELS: Labels = {side: {"quality": "good", "safety": "safe"} for side in "AB"}


def load_rule(spec: str) -> str:
    """Register a team's own preference and return its name: ``FILE.py:FUNCTION`` or ``MODULE:FUNCTION``
    naming a function (prompt, answer A, answer B) → "a", "b" or "tie", like the rules above. Its kind is
    the function's ``kind`` attribute (else "custom"); a ``trait`` attribute, a function of one answer,
    lets the bench print the rule's ceiling. Raises ValueError naming what is wrong."""
    source, _, attribute = spec.rpartition(":")
    if not source or not attribute:
        raise ValueError(f"rule {spec!r}: expected FILE.py:FUNCTION or MODULE:FUNCTION")
    if source.endswith(".py"):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"rule {spec!r}: no file {source}")
        module_spec = importlib.util.spec_from_file_location(f"_rlhf_rule_{path.stem}", path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(source)
        except ImportError as exc:
            raise ValueError(f"rule {spec!r}: cannot import {source}: {exc}") from exc
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ValueError(f"rule {spec!r}: {source} has no function {attribute}")
    name = attribute
    if name in RULES and getattr(RULES[name], "__wrapped__", RULES[name]) is not function:
        raise ValueError(f"rule {spec!r}: the name {name!r} is a rule already; rename the function")

    @functools.wraps(function)
    def checked(prompt: str, a: str, b: str) -> Verdict:
        verdict = function(prompt, a, b)
        if verdict not in ("a", "b", "tie"):
            raise ValueError(f"rule {name!r} returned {verdict!r}; a rule returns 'a', 'b' or 'tie'")
        return verdict

    RULES[name] = checked
    KINDS[name] = str(getattr(function, "kind", "custom"))
    trait = getattr(function, "trait", None)
    if callable(trait):
        TRAITS[name] = trait
    return name


def labels(rule: str, a: str, b: str) -> Labels:
    """The per-answer labels sent with the judgement: for a rule of :data:`SAFETY_RULES`, an answer with a
    word of :data:`UNSAFE_WORDS` is "unsafe" (quality stays "good"); otherwise both are good and safe."""
    if rule not in SAFETY_RULES:
        return {side: dict(values) for side, values in SAFE_LABELS.items()}
    return {
        side: {"quality": "good", "safety": "unsafe" if is_unsafe(text) else "safe"}
        for side, text in (("A", a), ("B", b))
    }


def prompt_text(messages: list[dict[str, str]]) -> str:
    """The prompt as a rule reads it: the user's turns of the conversation, one per line."""
    return "\n".join(m.get("content", "") for m in messages if m.get("role", "user") == "user")
