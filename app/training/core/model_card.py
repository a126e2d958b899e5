"""The model card (``README.md``) every saved version carries, as the Hugging Face Hub reads one.

``card.json`` is what this project reads back; the README says the same for people and for the Hub: YAML
front matter (``base_model``, ``library_name``, ``pipeline_tag``, tags such as ``reward-model``, ``rlhf``,
``dpo``, validation metrics as ``model-index``, the training parameters and metrics under ``rlhf_loop``)
and a body with the snippet that loads the folder with plain transformers (``core.usage``). Written with
``huggingface_hub``'s ``ModelCard``, so the metadata is what ``huggingface_hub`` itself validates and
uploads.

``base_model`` is a Hub id, the model the lineage started from: a run that starts from a version folder
inherits that folder's ``base_model`` (its own README), so a DPO child of a PPO child of SmolLM2 still
names ``HuggingFaceTB/SmolLM2-135M-Instruct``; a local folder without a card names none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.training.core.config import DEFAULT_BACKBONE
from app.training.core.usage import SNIPPETS, loader_of

README = "README.md"
# Names the project resolves to a shipped copy, and the Hub id of what that copy is.
HUB_IDS = {DEFAULT_BACKBONE: "sentence-transformers/all-MiniLM-L6-v2"}

# card "kind" (or a policy card's "method") → (pipeline tag, tags, what the model is)
KINDS: dict[str, tuple[str, list[str], str]] = {
    "reward": ("text-classification", ["reward-model", "bradley-terry"], "A reward model (Bradley–Terry)"),
    "classifier": ("text-classification", ["classifier"], "A response quality and safety classifier"),
    "sft": ("text-generation", ["sft"], "A policy fine-tuned on written demonstrations (SFT)"),
    "dpo": ("text-generation", ["dpo"], "A policy trained with DPO on human preferences"),
    "online_dpo": ("text-generation", ["dpo", "online-dpo"], "A policy trained with online DPO"),
    "ppo": ("text-generation", ["ppo"], "A policy trained with PPO against a reward model"),
    "rloo": ("text-generation", ["rloo"], "A policy trained with RLOO against a reward model"),
    "base": ("text-generation", [], "The starting policy"),
}


def method_of(card: dict[str, Any]) -> str:
    """What trained the model: a card's kind, or for a policy-gradient card (kind ``policy``) its method."""
    return str(card.get("method") or card["kind"]) if card.get("kind") == "policy" else str(card["kind"])


def hub_base_model(label: str) -> str | None:
    """The Hub id a run's starting model descends from (see the module's docstring); None when unknown."""
    if label in HUB_IDS:
        return HUB_IDS[label]
    if label.startswith("in-memory:"):
        return None
    path = Path(label)
    if path.is_dir():
        return _card_base_model(path / README)
    return label if _is_repo_id(label) else None


def _is_repo_id(text: str) -> bool:
    """Whether ``text`` reads as a Hub model id (``org/name`` or ``name``), not a path."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if text.startswith((".", "/", "~")) or text.count("/") > 1:
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def _card_base_model(readme: Path) -> str | None:
    """The ``base_model`` a folder's README names, if it has a readable one."""
    from huggingface_hub import ModelCard

    try:
        base = ModelCard.load(readme).data.base_model if readme.is_file() else None
    except (OSError, ValueError):
        return None
    return base if isinstance(base, str) else None


def _table(rows: dict[str, Any], header: tuple[str, str]) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "| --- | --- |"]
    lines += [f"| `{key}` | {value} |" for key, value in rows.items()]
    return "\n".join(lines)


def _body(name: str, card: dict[str, Any], method: str, label: str, snippet: str) -> str:
    pipeline, _, what = KINDS.get(method, KINDS["base"])
    sections = [
        f"# {name}",
        f"{what}, by RLHF Loop, starting from `{label}`." if method != "base" else f"{what}: `{label}`.",
        "## Use it with transformers",
        f"```python\n{snippet}```",
    ]
    if card.get("config"):
        sections += ["## Training parameters", _table(card["config"], ("parameter", "value"))]
    if card.get("metrics"):
        sections += ["## Metrics", _table(card["metrics"], ("metric", "value"))]
    if card.get("data"):
        sections += ["## Data", _table(card["data"], ("what", "count or hash"))]
    if card.get("versions"):
        sections += ["## Framework versions", _table(card["versions"], ("library", "version"))]
    return "\n\n".join(sections) + "\n"


def model_card(folder: Path, card: dict[str, Any], *, name: str | None = None) -> Any:
    """The ``huggingface_hub.ModelCard`` of the model saved in ``folder`` (weights and card.json's content
    ``card``); ``name`` defaults to the folder's. No ``datasets``: the data are judgements in this app's
    database, which have no Hub id (the card's data section hashes and counts them instead)."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    card = json.loads(json.dumps(card, default=str))  # plain YAML values: tuples become lists, as in card.json
    method = method_of(card)
    pipeline, kind_tags, _ = KINDS.get(method, KINDS["base"])
    label = str(card.get("backbone") or card.get("base_policy") or "")
    name = name or Path(folder).name
    tags = ["rlhf-loop", "rlhf", *kind_tags]
    if (card.get("config") or {}).get("advantage") == "grpo":
        tags.append("grpo")
    validation = {k: v for k, v in (card.get("metrics") or {}).items() if k.startswith("val_")}
    results = [
        EvalResult(
            task_type=pipeline,
            dataset_type="rlhf-loop/held-out-prompts",
            dataset_name="held-out prompts",
            metric_type=key.removeprefix("val_"),
            metric_value=value,
            metric_name=key,
        )
        for key, value in validation.items()
    ]
    training = {key: card[key] for key in ("config", "metrics", "data", "steps") if card.get(key) is not None}
    data = ModelCardData(
        base_model=hub_base_model(label) if label else None,
        library_name="transformers",
        pipeline_tag=pipeline,
        tags=tags,
        model_name=name if results else None,
        eval_results=results or None,
        rlhf_loop={"method": method, **training} if method != "base" else None,
    )
    body = _body(name, card, method, label, SNIPPETS[loader_of(folder)])
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def write_model_card(folder: Path, card: dict[str, Any], *, name: str | None = None) -> None:
    """``folder/README.md``: the model card of the model saved there (see :func:`model_card`)."""
    model_card(folder, card, name=name).save(Path(folder) / README)
