"""The export that is a folder (``hf``: a ``save_to_disk`` folder, zipped) carries a dataset card the Hub reads,
whose ``dataset_info`` says what the folder holds."""

from __future__ import annotations

from app.export.filters import parse_params
from app.export.service import export_to_folder
from app.export.writers import unzip_dataset
from tests.export.test_roundtrip import CONVERSATIONS
from tests.export.test_roundtrip import _seed as seed_preferences


def test_the_hf_export_folder_has_a_dataset_card_describing_it(db, tmp_path):
    from datasets import load_from_disk
    from huggingface_hub import DatasetCard

    seed_preferences(db)
    result = export_to_folder(db, parse_params({"format": "hf"}), tmp_path / "out")
    folder = unzip_dataset(tmp_path / "out" / result["file"], tmp_path / "unzipped")
    dataset = load_from_disk(str(folder))  # the card beside the Arrow files does not disturb datasets
    card = DatasetCard.load(folder / "README.md")
    info = card.data.dataset_info
    assert [f["name"] for f in info["features"]] == dataset.column_names == ["prompt", "chosen", "rejected"]
    assert info["splits"] == [{"name": "train", "num_bytes": info["splits"][0]["num_bytes"], "num_examples": 4}]
    assert len(dataset) == len(CONVERSATIONS) == 4
    assert {"rlhf", "trl", "preference"} <= set(card.data.tags) and card.data.size_categories == ["n<1K"]
    assert "load_from_disk" in card.text


def test_an_empty_hf_export_still_has_a_card(db, tmp_path):
    from huggingface_hub import DatasetCard

    result = export_to_folder(db, parse_params({"format": "hf", "prompt_set_id": 2**31 - 1}), tmp_path / "out")
    folder = unzip_dataset(tmp_path / "out" / result["file"], tmp_path / "unzipped")
    splits = DatasetCard.load(folder / "README.md").data.dataset_info["splits"]
    assert [(s["name"], s["num_examples"]) for s in splits] == [("train", 0)]
