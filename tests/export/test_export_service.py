"""Exports: each format's records, every filter, chunked reading, the snapshot, CSV injection."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from app.export import query
from app.export.filters import parse_params
from app.export.service import export_to_folder
from tests.export.data import annotators, demonstration, judged_pair, label
from tests.factories import ModelVersionFactory, PromptSetFactory, UserFactory


def run(db, tmp_path: Path, **params: Any) -> tuple[list[Any], dict[str, Any]]:
    """Export with ``params`` and return (the rows read back, the job-style result)."""
    result = export_to_folder(db, parse_params(params), tmp_path / "out")
    path = tmp_path / "out" / result["file"]
    fmt = result["format"]
    if fmt == "csv":
        with path.open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f)), result
    if fmt in ("parquet", "hf"):
        return [], result
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()], result


class TestFormats:
    def test_trl_standard_conversational_and_hh(self, db, tmp_path):
        alice, bob = annotators(2)
        judged_pair(
            db, messages=[{"role": "user", "content": "Hi?"}], a="Hello!", b="Go away.", verdicts=[(alice, "a")]
        )
        judged_pair(db, messages=[{"role": "user", "content": "2+2?"}], a="5", b="4", verdicts=[(bob, "b")])
        rows, _ = run(db, tmp_path, format="trl")
        assert rows == [
            {"prompt": "Hi?", "chosen": "Hello!", "rejected": "Go away."},
            {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
        ]
        rows, _ = run(db, tmp_path, format="trl_conversational")
        assert rows[1] == {
            "prompt": [{"role": "user", "content": "2+2?"}],
            "chosen": [{"role": "assistant", "content": "4"}],
            "rejected": [{"role": "assistant", "content": "5"}],
        }
        rows, _ = run(db, tmp_path, format="hh")
        assert rows[0] == {
            "chosen": "\n\nHuman: Hi?\n\nAssistant: Hello!",
            "rejected": "\n\nHuman: Hi?\n\nAssistant: Go away.",
        }

    def test_multi_turn_prompt_keeps_its_context(self, db, tmp_path):
        messages = [
            {"role": "user", "content": "Name a fruit."},
            {"role": "assistant", "content": "Apple."},
            {"role": "user", "content": "Another?"},
        ]
        judged_pair(db, messages=messages, a="Pear.", b="Car.", verdicts=[(UserFactory(), "a")])
        rows, _ = run(db, tmp_path, format="trl")
        assert rows[0]["prompt"] == "\n\nHuman: Name a fruit.\n\nAssistant: Apple.\n\nHuman: Another?\n\nAssistant:"
        rows, _ = run(db, tmp_path, format="hh")
        assert (
            rows[0]["chosen"] == "\n\nHuman: Name a fruit.\n\nAssistant: Apple.\n\nHuman: Another?\n\nAssistant: Pear."
        )

    def test_preference_formats_never_hold_ties_or_both_bad(self, db, tmp_path):
        users = annotators(3)
        judged_pair(db, verdicts=[(users[0], "tie"), (users[1], "both_bad"), (users[2], "a")])
        rows, result = run(db, tmp_path, format="trl", ties="keep", both_bad="keep")
        assert len(rows) == 1
        assert {"rows": 1, "dropped_ties": 1, "dropped_both_bad": 1}.items() <= result["snapshot"]["counts"].items()

    def test_csv_has_every_column_and_neutralises_formulas(self, db, tmp_path):
        user = UserFactory(username="eve")
        judged_pair(
            db,
            messages=[{"role": "user", "content": '=HYPERLINK("http://x")'}],
            a="+1 call me",
            b="@SUM(A1)",
            verdicts=[(user, "tie")],
        )
        rows, _ = run(db, tmp_path, format="csv", ties="keep")
        assert rows[0]["prompt"] == '\'=HYPERLINK("http://x")'
        assert rows[0]["response_a"] == "'+1 call me" and rows[0]["response_b"] == "'@SUM(A1)"
        assert rows[0]["choice"] == "tie" and rows[0]["chosen"] == "" and rows[0]["annotator"] == "eve"
        judged_pair(db, a="-5 degrees", b="fine", verdicts=[(user, "a")])
        rows, _ = run(db, tmp_path, format="csv")
        assert [r["response_a"] for r in rows] == ["'-5 degrees"]

    def test_table_exports_say_which_answer_was_cut_off(self, db, tmp_path):
        pair = judged_pair(db, a="whole answer.", b="an answer that stops mid", verdicts=[(UserFactory(), "a")])
        pair.response_a.generation_params = {"finish_reason": "stop"}
        pair.response_b.generation_params = {"finish_reason": "length"}
        db.flush()
        rows, _ = run(db, tmp_path, format="csv")
        assert (rows[0]["cut_off_a"], rows[0]["cut_off_b"]) == ("False", "True")

    @pytest.mark.parametrize(
        "cell",
        [" =1+1", "\n=1+1", "\u00a0@SUM(A1)", "\u3000=1", "\uff1dHYPERLINK(1)", "\uff0b1", "\uff0d1", "\uff20A1"],
    )
    def test_csv_neutralises_formulas_behind_whitespace_or_in_full_width(self, db, tmp_path, cell):
        judged_pair(db, a=cell, b="plain text", verdicts=[(UserFactory(), "a")])
        rows, _ = run(db, tmp_path, format="csv")
        assert rows[0]["response_a"] == "'" + cell and rows[0]["response_b"] == "plain text"

    def test_parquet_and_hf_folder_read_back(self, db, tmp_path):
        import pyarrow.parquet as pq
        from datasets import load_from_disk

        from app.export.writers import unzip_dataset

        for i in range(3):
            judged_pair(db, a=f"good {i}", b=f"bad {i}", verdicts=[(UserFactory(), "a")])
        _, result = run(db, tmp_path, format="parquet")
        table = pq.read_table(tmp_path / "out" / result["file"])
        assert table.num_rows == 3 and table.column("chosen").to_pylist() == ["good 0", "good 1", "good 2"]
        _, result = run(db, tmp_path, format="hf")
        dataset = load_from_disk(str(unzip_dataset(tmp_path / "out" / result["file"], tmp_path / "unzipped")))
        assert dataset.column_names == ["prompt", "chosen", "rejected"] and dataset["rejected"] == [
            "bad 0",
            "bad 1",
            "bad 2",
        ]

    def test_sft_and_labels(self, db, tmp_path):
        user = UserFactory(username="writer")
        pair = judged_pair(db, messages=[{"role": "user", "content": "Explain rain."}], verdicts=[(user, "a")])
        demonstration(db, user, pair.prompt_id, "Water condenses and falls.")
        label(db, user, pair.response_a_id, quality=True, safety=False)
        rows, _ = run(db, tmp_path, format="sft")
        assert rows == [
            {
                "messages": [
                    {"role": "user", "content": "Explain rain."},
                    {"role": "assistant", "content": "Water condenses and falls."},
                ],
                "kind": "ideal",
                "annotator": "writer",
            }
        ]
        rows, _ = run(db, tmp_path, format="labels")
        assert rows == [
            {"prompt": "Explain rain.", "response": "answer A", "quality": 1, "safety": 0, "annotator": "writer"}
        ]


class TestFilters:
    def test_prompt_set_policy_version_and_dates(self, db, tmp_path):
        user = UserFactory()
        mine, other = PromptSetFactory(), PromptSetFactory()
        v1, v2 = ModelVersionFactory(), ModelVersionFactory()
        judged_pair(
            db,
            prompt_set=mine,
            a="in set",
            verdicts=[(user, "a")],
            versions=(v1.id, v2.id),
            when=datetime(2024, 5, 2, 23, 59, tzinfo=UTC),
        )
        judged_pair(
            db, prompt_set=other, a="other set", verdicts=[(user, "a")], when=datetime(2024, 5, 3, 0, 0, tzinfo=UTC)
        )
        assert [r["chosen"] for r in run(db, tmp_path, format="trl", prompt_set_id=mine.id)[0]] == ["in set"]
        assert [r["chosen"] for r in run(db, tmp_path, format="trl", policy_version_id=v2.id)[0]] == ["in set"]
        assert [r["chosen"] for r in run(db, tmp_path, format="trl", date_to=date(2024, 5, 2))[0]] == ["in set"]
        assert [r["chosen"] for r in run(db, tmp_path, format="trl", date_from=date(2024, 5, 3))[0]] == ["other set"]

    def test_annotators_included_or_excluded(self, db, tmp_path):
        ann, ben = UserFactory(username="ann"), UserFactory(username="ben")
        judged_pair(db, a="by ann", verdicts=[(ann, "a")])
        judged_pair(db, a="by ben", verdicts=[(ben, "a")])
        assert [r["chosen"] for r in run(db, tmp_path, format="trl", include_annotators=["ben"])[0]] == ["by ben"]
        assert [r["chosen"] for r in run(db, tmp_path, format="trl", exclude_annotators=["ben"])[0]] == ["by ann"]

    def test_min_agreement_majority_and_ties(self, db, tmp_path):
        u = annotators(3)
        judged_pair(db, a="clear", verdicts=[(u[0], "a"), (u[1], "a"), (u[2], "b")])  # agreement 2/3
        judged_pair(db, a="split", verdicts=[(u[0], "a"), (u[1], "b")])  # 1/2, no majority
        judged_pair(db, a="tied", verdicts=[(u[0], "tie"), (u[1], "tie")])  # majority tie
        every, _ = run(db, tmp_path, format="csv", ties="keep")
        assert len(every) == 7
        rows, result = run(db, tmp_path, format="csv", aggregation="majority", ties="keep")
        assert [(r["response_a"], r["choice"], r["annotator"], r["judgements"]) for r in rows] == [
            ("clear", "a", "majority", "3"),
            ("tied", "tie", "majority", "2"),
        ]
        assert result["snapshot"]["counts"]["dropped_no_majority"] == 1
        rows, _ = run(db, tmp_path, format="trl", min_agreement=0.6)
        assert [r["chosen"] for r in rows] == ["clear", "clear", "answer B"]  # every judgement of the agreed pair
        rows, _ = run(db, tmp_path, format="csv", min_agreement=0.6, ties="drop")
        assert {r["response_a"] for r in rows} == {"clear"}

    def test_bad_filters_name_the_field(self):
        from app.errors import Invalid

        with pytest.raises(Invalid, match="min_agreement"):
            parse_params({"min_agreement": 2})
        with pytest.raises(Invalid, match="date_from must not be after date_to"):
            parse_params({"date_from": "2024-02-02", "date_to": "2024-01-01"})
        with pytest.raises(Invalid, match="format"):
            parse_params({"format": "xml"})
        with pytest.raises(Invalid, match="NUL") as nul:  # a download would fail after its headers were sent
            parse_params({"exclude_annotators": ["ann", "b\x00b"]})
        assert nul.value.field == "exclude_annotators.1"


class TestStreaming:
    def test_small_chunks_never_split_a_pair(self, db, tmp_path, monkeypatch):
        monkeypatch.setattr(query, "BATCH", 3)
        u = annotators(4)
        for i in range(5):
            judged_pair(
                db, a=f"p{i}", verdicts=[(user, "a" if k < 3 else "b") for k, user in enumerate(u[: 2 + i % 3])]
            )
        small, _ = run(db, tmp_path, format="csv", aggregation="majority")
        monkeypatch.setattr(query, "BATCH", 10_000)
        whole, _ = run(db, tmp_path, format="csv", aggregation="majority")
        assert [r["response_a"] for r in small] == [f"p{i}" for i in range(5)]
        assert small == whole

    def test_snapshot_hashes_the_ids_and_counts_them(self, db, tmp_path):
        u = annotators(2)
        for i in range(3):
            judged_pair(db, a=f"x{i}", verdicts=[(u[0], "a"), (u[1], "b")])
        _, first = run(db, tmp_path, format="trl")
        _, again = run(db, tmp_path, format="trl")
        assert first["snapshot"]["sha256"] == again["snapshot"]["sha256"]
        assert first["snapshot"]["counts"]["rows"] == 6 and first["snapshot"]["counts"]["judgements"] == 6
        ids = (tmp_path / "out" / first["ids_file"]).read_text().split()
        assert len(ids) == 6
        judged_pair(db, a="new", verdicts=[(u[0], "a")])
        _, later = run(db, tmp_path, format="trl")
        assert later["snapshot"]["sha256"] != first["snapshot"]["sha256"]
        saved = json.loads((tmp_path / "out" / later["snapshot_file"]).read_text())
        assert saved["sha256"] == later["snapshot"]["sha256"] and saved["params"]["format"] == "trl"
