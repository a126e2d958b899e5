"""Building training examples from the database: which judgements are pairs, majority vs every
judgement, the filters, the snapshot cutoff, the split by prompt, and the classifier's labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.annotation.models import Choice
from app.finetune.core.dataset import (
    DataFilters,
    labelled_responses,
    majority_choice,
    majority_label,
    preference_examples,
)
from app.training.core.data import prompt_key_of, split_by_prompt
from tests.rewards.conftest import add_pair, add_prompt, add_prompt_set, add_user, judge, label, seed_preferences

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_only_a_or_b_judgements_are_pairs_and_sides_follow_the_choice(db) -> None:
    prompt_set, ann = add_prompt_set(db), add_user(db)
    rows = {choice: add_pair(db, prompt_set, f"q {choice}", f"A {choice}", f"B {choice}") for choice in Choice}
    ids = {choice: judge(db, pair, ann, choice, strength=3).id for choice, pair in rows.items()}

    examples = preference_examples(db)
    assert sorted(ex.id for ex in examples) == sorted([str(ids[Choice.a]), str(ids[Choice.b])])
    by_id = {ex.id: ex for ex in examples}
    a, b = by_id[str(ids[Choice.a])], by_id[str(ids[Choice.b])]
    assert (a.chosen, a.rejected, b.chosen, b.rejected) == ("A a", "B a", "B b", "A b")
    assert a.prompt == [{"role": "user", "content": "q a"}] and a.strength == 3
    assert a.prompt_key == str(rows[Choice.a].prompt_id)


def test_every_judgement_by_default_or_the_pair_once_by_majority(db) -> None:
    prompt_set = add_prompt_set(db)
    ann = [add_user(db) for _ in range(3)]
    clear = add_pair(db, prompt_set, "clear", "good", "bad")  # a, a, b -> a
    for user, choice, strength in zip(ann, (Choice.a, Choice.a, Choice.b), (1, 3, 2), strict=True):
        judge(db, clear, user, choice, strength)
    split = add_pair(db, prompt_set, "split", "x", "y")  # a, b, tie -> no majority
    for user, choice in zip(ann, (Choice.a, Choice.b, Choice.tie), strict=True):
        judge(db, split, user, choice)
    ties = add_pair(db, prompt_set, "ties", "p", "q")  # b, tie, tie -> tie wins: not a pair
    for user, choice in zip(ann, (Choice.b, Choice.tie, Choice.tie), strict=True):
        judge(db, ties, user, choice)

    each = preference_examples(db, aggregate="each")
    assert len(each) == 6  # a, a, b on "clear"; a, b on "split"; b on "ties"
    majority = preference_examples(db, aggregate="majority")
    assert len(majority) == 1
    [only] = majority
    assert (only.chosen, only.rejected, only.strength) == ("good", "bad", 2)  # median strength of the two a votes
    assert only.id.count("+") == 2  # the snapshot names all three judgements of the pair


def test_majority_helpers() -> None:
    assert majority_choice([Choice.a, Choice.b, Choice.a]) is Choice.a
    assert majority_choice([Choice.a, Choice.b]) is None
    assert majority_choice([]) is None
    assert (majority_label([True, True, False]), majority_label([True, False]), majority_label([False])) == (
        1.0,
        None,
        0.0,
    )


def test_filters_by_prompt_set_annotator_and_dates(db) -> None:
    kept_set, other_set = add_prompt_set(db), add_prompt_set(db)
    kept_ann, other_ann = add_user(db), add_user(db)
    pair, elsewhere = add_pair(db, kept_set, "q", "a", "b"), add_pair(db, other_set, "q", "a", "b")
    old = judge(db, pair, kept_ann, Choice.a, created_at=T0)
    new = judge(db, pair, other_ann, Choice.b, created_at=T0 + timedelta(days=2))
    judge(db, elsewhere, kept_ann, Choice.a, created_at=T0 + timedelta(days=1))

    def ids(filters: DataFilters) -> list[str]:
        return sorted(ex.id for ex in preference_examples(db, filters))

    assert len(ids(DataFilters())) == 3
    assert len(ids(DataFilters(prompt_set_ids=[kept_set.id]))) == 2
    assert ids(DataFilters(prompt_set_ids=[kept_set.id], annotator_ids=[kept_ann.id])) == [str(old.id)]
    assert ids(DataFilters(prompt_set_ids=[kept_set.id], since=T0 + timedelta(days=1))) == [str(new.id)]
    assert ids(DataFilters(prompt_set_ids=[kept_set.id], until=T0 + timedelta(days=1))) == [str(old.id)]
    assert ids(DataFilters(prompt_set_ids=[kept_set.id]).capped(T0 + timedelta(hours=1))) == [str(old.id)]
    assert DataFilters(until=T0).capped(T0 + timedelta(days=9)).until == T0  # an earlier until stays


def test_pairs_of_one_prompt_stay_on_one_side_of_the_split(db) -> None:
    prompt_set, annotators = add_prompt_set(db), [add_user(db) for _ in range(3)]
    for i in range(20):  # 20 prompts, three judged pairs each
        prompt = add_prompt(db, prompt_set, f"prompt {i}")
        for j in range(3):
            pair = add_pair(db, prompt_set, "", f"good {i}.{j}", f"bad {i}.{j}", prompt=prompt)
            judge(db, pair, annotators[j], Choice.a)
    examples = preference_examples(db)
    assert len({ex.prompt_key for ex in examples}) == 20
    train, validation = split_by_prompt(examples, 0.25, seed=0)
    assert train and validation
    assert {prompt_key_of(ex) for ex in train}.isdisjoint({prompt_key_of(ex) for ex in validation})
    held = {ex.prompt_key for ex in validation}
    assert all(sum(ex.prompt_key == key for ex in validation) == 3 for key in held)


def test_labelled_responses_take_each_heads_majority(db) -> None:
    prompt_set, ann = add_prompt_set(db), [add_user(db) for _ in range(3)]
    pair = add_pair(db, prompt_set, "q", "fine answer", "nasty answer")
    for user, (quality, safety) in zip(ann, [(True, True), (True, False), (False, True)], strict=True):
        label(db, pair.response_a_id, user, quality=quality, safety=safety)
    label(db, pair.response_b_id, ann[0], quality=False, safety=False)
    label(db, pair.response_b_id, ann[1], quality=False, safety=True)  # safety split evenly: no label

    by_text = {ex.response: ex for ex in labelled_responses(db)}
    assert by_text["fine answer"].labels == {"quality": 1.0, "safety": 1.0}
    assert by_text["nasty answer"].labels == {"quality": 0.0, "safety": None}
    assert by_text["fine answer"].prompt == [{"role": "user", "content": "q"}]
    only_first = labelled_responses(db, DataFilters(annotator_ids=[ann[1].id]))
    assert {ex.response: ex.labels["safety"] for ex in only_first} == {"fine answer": 0.0, "nasty answer": 1.0}


def test_seeded_preferences_always_prefer_the_polite_answer(db) -> None:
    seed_preferences(db, 10)
    assert all(ex.chosen[:4] in ("Sure", "Of c") for ex in preference_examples(db))


def test_with_ties_a_tie_is_an_example_of_its_own_and_both_bad_still_is_not(db) -> None:
    prompt_set, ann = add_prompt_set(db), add_user(db)
    rows = {choice: add_pair(db, prompt_set, f"q {choice}", f"A {choice}", f"B {choice}") for choice in Choice}
    ids = {choice: judge(db, pair, ann, choice, strength=3).id for choice, pair in rows.items()}

    by_id = {ex.id: ex for ex in preference_examples(db, ties=True)}
    assert set(by_id) == {str(ids[choice]) for choice in (Choice.a, Choice.b, Choice.tie)}
    tie = by_id[str(ids[Choice.tie])]
    assert tie.tie and (tie.chosen, tie.rejected, tie.strength) == ("A tie", "B tie", 1)  # the pair's two sides
    assert not by_id[str(ids[Choice.a])].tie and by_id[str(ids[Choice.a])].strength == 3
    assert all(not ex.tie for ex in preference_examples(db))  # ties stay out unless asked for


def test_with_ties_a_pair_whose_majority_is_a_tie_counts_once_as_a_tie(db) -> None:
    prompt_set = add_prompt_set(db)
    ann = [add_user(db) for _ in range(3)]
    tied = add_pair(db, prompt_set, "tied", "p", "q")  # b, tie, tie -> a tie
    for user, choice in zip(ann, (Choice.b, Choice.tie, Choice.tie), strict=True):
        judge(db, tied, user, choice)
    split = add_pair(db, prompt_set, "split", "x", "y")  # a, b, tie -> no majority: nothing
    for user, choice in zip(ann, (Choice.a, Choice.b, Choice.tie), strict=True):
        judge(db, split, user, choice)

    [only] = preference_examples(db, aggregate="majority", ties=True)
    assert only.tie and (only.chosen, only.rejected) == ("p", "q") and only.id.count("+") == 2
    assert preference_examples(db, aggregate="majority") == []
