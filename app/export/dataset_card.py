"""The dataset card (``README.md``) of an export that is a folder: the ``hf`` format's ``save_to_disk`` folder.

Written with ``huggingface_hub``'s ``DatasetCard``, its YAML front matter is what the Hub reads: tags, task
category, size category, and ``dataset_info`` (the columns and their types, the split and its size) taken
from the ``datasets`` object itself, so the card cannot describe other columns than the folder holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

README = "README.md"
# The Hub's size categories: (upper bound, name).
SIZES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")]

BODY = """# RLHF Loop preferences

Human preferences collected with RLHF Loop: one row per verdict that preferred one answer (ties and
"both bad" are left out), {rows} rows. Columns: `prompt` (the conversation as text), `chosen` (the
preferred answer), `rejected` (the other one): TRL's standard preference format, which its
`RewardTrainer` and `DPOTrainer` take as they are.

```python
from datasets import load_from_disk

dataset = load_from_disk("dataset")  # this folder
```
"""


def size_category(rows: int) -> str:
    return next((name for bound, name in SIZES if rows < bound), "n>1M")


def write_dataset_card(folder: Path, dataset: Any) -> None:
    """``folder/README.md`` for the ``datasets.Dataset`` saved in ``folder``."""
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCard, DatasetCardData

    rows = len(dataset)
    data = DatasetCardData(
        pretty_name="RLHF Loop preferences",
        tags=["rlhf", "rlhf-loop", "preference", "human-feedback", "trl", "dpo", "reward-modeling"],
        task_categories=["text-generation"],
        size_categories=[size_category(rows)],
    )
    info = dataset.info.copy()
    if not info.splits:  # a dataset built in memory (an empty export) names no split: it is the train split
        from datasets import SplitDict, SplitInfo

        info.splits = SplitDict({"train": SplitInfo(name="train", num_examples=rows)})
    DatasetInfosDict({"default": info}).to_dataset_card_data(data)
    DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{BODY.format(rows=rows)}").save(Path(folder) / README)
