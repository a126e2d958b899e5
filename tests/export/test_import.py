"""Importing preference datasets: TRL (plain, conversational, implicit prompt), HH-RLHF (gzipped
too), all or nothing with the bad lines named, and the real HH-RLHF helpful-base test split."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.annotation.models import Choice, Judgement
from app.auth.models import User
from app.importing.service import import_preferences
from app.pool.models import Pair, PairStatus, Response
from app.prompts.importing import ImportRejected
from app.prompts.models import Prompt, PromptSet

HH_TEST = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "hh-rlhf" / "helpful-base_test.jsonl.gz"


def jsonl(*records: object) -> io.BytesIO:
    return io.BytesIO("".join(json.dumps(r) + "\n" for r in records).encode())


def imported(db, source: str = "external:test") -> list[tuple[list, str, str, Judgement]]:
    """(prompt messages, chosen text, rejected text, judgement) of every imported pair, in file order."""
    rows = []
    user = db.scalar(select(User).where(User.username == source))
    for judgement in db.scalars(select(Judgement).where(Judgement.annotator_id == user.id).order_by(Judgement.pair_id)):
        pair = db.get(Pair, judgement.pair_id)
        chosen, rejected = db.get(Response, pair.response_a_id), db.get(Response, pair.response_b_id)
        rows.append((db.get(Prompt, pair.prompt_id).messages, chosen.text, rejected.text, judgement))
    return rows


class TestTrl:
    def test_plain_conversational_and_implicit_prompt(self, db):
        stream = jsonl(
            {"prompt": "Hi?", "chosen": "Hello!", "rejected": "Go away."},
            {
                "prompt": [{"role": "user", "content": "2+2?"}],
                "chosen": [{"role": "assistant", "content": "4"}],
                "rejected": [{"role": "assistant", "content": "5"}],
            },
            {
                "chosen": [{"role": "user", "content": "Sky?"}, {"role": "assistant", "content": "Blue."}],
                "rejected": [{"role": "user", "content": "Sky?"}, {"role": "assistant", "content": "Green."}],
            },
        )
        report = import_preferences(db, stream=stream, fmt="trl", name="test")
        assert report.pairs == 3 and report.source == "external:test"
        rows = imported(db)
        assert [(m[-1]["content"], c, r) for m, c, r, _ in rows] == [
            ("Hi?", "Hello!", "Go away."),
            ("2+2?", "4", "5"),
            ("Sky?", "Blue.", "Green."),
        ]
        assert all(j.choice is Choice.a for *_, j in rows)

    def test_the_external_annotator_is_an_inactive_account_and_pairs_are_complete(self, db):
        import_preferences(db, stream=jsonl({"prompt": "Q", "chosen": "A", "rejected": "B"}), fmt="trl", name="test")
        user = db.scalar(select(User).where(User.username == "external:test"))
        assert user is not None and not user.is_active
        pair = db.scalar(
            select(Pair).join(Response, Response.id == Pair.response_a_id).where(Response.source == "external:test")
        )
        assert pair.status is PairStatus.complete and pair.judgement_count == 1
        assert db.scalar(select(PromptSet.name).where(PromptSet.id == pair.prompt.prompt_set_id)) == "external:test"

    def test_a_prompt_seen_twice_is_stored_once(self, db):
        stream = jsonl(
            {"prompt": "Same?", "chosen": "A", "rejected": "B"}, {"prompt": "Same?", "chosen": "C", "rejected": "D"}
        )
        report = import_preferences(db, stream=stream, fmt="trl", name="test")
        assert (report.pairs, report.new_prompts) == (2, 1)

    def test_bad_lines_are_all_named_and_nothing_is_written(self, db):
        stream = io.BytesIO(
            b'{"prompt": "ok", "chosen": "a", "rejected": "b"}\n'
            b"not json\n"
            b'{"prompt": "no rejected", "chosen": "a"}\n'
            b'{"prompt": 5, "chosen": "a", "rejected": "b"}\n'
        )
        before = db.scalar(select(func.count()).select_from(Judgement))
        with pytest.raises(ImportRejected) as caught:
            import_preferences(db, stream=stream, fmt="trl", name="broken")
        assert [e.line for e in caught.value.errors] == [2, 3, 4]
        assert "line 3: rejected" in caught.value.message
        assert db.scalar(select(func.count()).select_from(Judgement)) == before
        assert db.scalar(select(User).where(User.username == "external:broken")) is None
        assert db.scalar(select(PromptSet).where(PromptSet.name == "external:broken")) is None

    def test_a_bad_source_name_is_refused(self, db):
        from app.errors import Invalid

        with pytest.raises(Invalid, match="name"):
            import_preferences(db, stream=jsonl(), fmt="trl", name="Bad Name!")


class TestHh:
    def test_gzipped_transcripts_whatever_the_name(self, db):
        raw = json.dumps(
            {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello there.", "rejected": "\n\nHuman: Hi\n\nAssistant: What?"}
        )
        report = import_preferences(db, stream=io.BytesIO(gzip.compress(raw.encode())), fmt="hh", name="test")
        assert report.pairs == 1
        assert [(m, c, r) for m, c, r, _ in imported(db)] == [
            ([{"role": "user", "content": "Hi"}], "Hello there.", "What?")
        ]

    def test_multi_turn_and_a_reply_that_goes_on(self, db):
        chosen = "\n\nHuman: A?\n\nAssistant: B.\n\nHuman: C?\n\nAssistant: D."
        rejected = "\n\nHuman: A?\n\nAssistant: B.\n\nHuman: C?\n\nAssistant: E.\n\nAssistant: F."
        import_preferences(db, stream=jsonl({"chosen": chosen, "rejected": rejected}), fmt="hh", name="test")
        ((messages, c, r, _),) = imported(db)
        assert [m["content"] for m in messages] == ["A?", "B.", "C?"] and (c, r) == ("D.", "E.\n\nAssistant: F.")

    def test_a_transcript_that_is_not_one_is_named(self, db):
        with pytest.raises(ImportRejected, match="line 1: transcript: must start with"):
            import_preferences(db, stream=jsonl({"chosen": "Hi", "rejected": "Ho"}), fmt="hh", name="test")


def _expected_reply(transcript: str, other: str) -> str | None:
    """TRL's rule for HH: the reply follows the chosen transcript's last Assistant cue, when both
    transcripts share everything before it; None for the few lines where they do not."""
    cut = transcript.rfind("\n\nAssistant:")
    other_cut = other.rfind("\n\nAssistant:")
    if transcript[:cut] != other[:other_cut]:
        return None
    return transcript[cut + len("\n\nAssistant:") :].strip()


def test_helpful_base_test_split_imports_whole(db):
    """Acceptance: 2,354 judgements, each with the right final replies."""
    if not HH_TEST.is_file():
        pytest.fail(f"the HH-RLHF test file is missing: expected it at {HH_TEST} (shared/data beside the repository)")
    with HH_TEST.open("rb") as stream:
        report = import_preferences(db, stream=stream, fmt="hh", name="hh-rlhf")
    assert report.pairs == 2354
    with gzip.open(HH_TEST, "rt", encoding="utf-8") as f:
        originals = [json.loads(line) for line in f]
    rows = imported(db, "external:hh-rlhf")
    assert len(rows) == 2354
    standard = 0
    for original, (_, chosen, rejected, judgement) in zip(originals, rows, strict=True):
        assert judgement.choice is Choice.a
        assert original["chosen"].rstrip().endswith(chosen) and original["rejected"].rstrip().endswith(rejected)
        expected = (
            _expected_reply(original["chosen"], original["rejected"]),
            _expected_reply(original["rejected"], original["chosen"]),
        )
        if expected[0] is not None:
            standard += 1
            assert (chosen, rejected) == expected
    assert standard >= 2340  # the rest continue past the shared prompt in one transcript only
