"""Every kind of version folder loads with plain transformers and computes what the project computes.

One tiny run of each trainer that writes a version (reward model on a decoder and on an encoder,
classifier, DPO and PPO with LoRA, SFT with every weight) saves a folder; then the README's "Using a version
outside RLHF Loop" snippets run against those folders in a fresh Python that never imports ``app``, and
what they print is compared with the project's own scorers (|difference| ≤ 1e-4). The model cards are
read back with ``huggingface_hub``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from app.training.core.usage import SNIPPETS
from tests.rewards.conftest import tiny_backbone  # noqa: F401 - a fixture
from tests.training.conftest import make_labelled, make_preferences

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Using a version outside RLHF Loop"
BASE_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
MESSAGES = [{"role": "user", "content": "How do I fix a bike?"}]
RESPONSES = ["Check the chain first, then the brakes.", "No idea."]  # the snippets' own example
TOLERANCE = 1e-4
COMMON = {"epochs": 1, "batch_size": 4, "num_threads": 1, "use_cpu": True, "checkpoint_every": 0}


def readme_snippets() -> dict[str, str]:
    """The README section's code blocks, keyed by which of ``core.usage``'s snippets each one is."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    section = section[: section.find("\n## ", len(SECTION))]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    by_text = {snippet: name for name, snippet in SNIPPETS.items()}
    assert sorted(by_text.get(block, block) for block in blocks) == sorted(SNIPPETS), (
        "the README's snippets and app/training/core/usage.py (what the model cards show) differ"
    )
    return {by_text[block]: block for block in blocks}


def tiny_encoder(folder: Path) -> Path:
    """A tiny random BERT with all-MiniLM-L6-v2's tokenizer (an encoder: mean pooling, no HF class for it)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from app.training.core.default_models import minilm_path

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    BertModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tiny_backbone) -> dict[str, Path]:  # noqa: F811
    """One folder per kind of version, each a child of a base policy whose card names its Hub id."""
    from app.training.classifier.config import ClassifierConfig
    from app.training.classifier.trainer import train_classifier
    from app.training.core.model_card import write_model_card
    from app.training.dpo.config import DPOConfig
    from app.training.dpo.trainer import train_dpo
    from app.training.ppo.config import PPOConfig
    from app.training.ppo.trainer import train_ppo
    from app.training.reward.config import RewardConfig
    from app.training.reward.scoring import RewardScorer
    from app.training.reward.trainer import train_reward_model
    from app.training.sft.config import SFTConfig
    from app.training.sft.trainer import train_sft
    from tests.training.test_sft_trainer import demonstrations

    root = tmp_path_factory.mktemp("hub-artefacts")
    base = root / "policy-v0"
    shutil.copytree(tiny_backbone, base)
    write_model_card(base, {"kind": "base", "backbone": BASE_HUB_ID})  # as the bootstrap writes it
    prefs, labelled = make_preferences(16), make_labelled(16)
    head = {**COMMON, "validation_fraction": 0.25, "max_length": 128}
    out = {
        "reward": root / "reward-decoder",
        "reward_encoder": root / "reward-encoder",
        "classifier": root / "classifier",
        "dpo_lora": root / "dpo-lora",
        "ppo_lora": root / "ppo-lora",
        "sft_full": root / "sft-full",
    }
    train_reward_model(prefs, RewardConfig(backbone=str(base), **head), out["reward"])
    encoder = tiny_encoder(root / "tiny-bert")
    train_reward_model(prefs, RewardConfig(backbone=str(encoder), **head), out["reward_encoder"])
    train_classifier(labelled, ClassifierConfig(backbone=str(base), **head), out["classifier"])
    dpo = {**COMMON, "learning_rate": 1e-2, "max_response_length": 24, "validation_fraction": 0.25}
    train_dpo(prefs[:8], DPOConfig(policy=str(base), use_lora=True, **dpo), out["dpo_lora"])
    # PPO with a separate value model: the decoder reward folder, read as a sequence classifier.
    runtime = {key: COMMON[key] for key in ("batch_size", "num_threads", "use_cpu", "checkpoint_every")}
    ppo = {**runtime, "updates": 2, "num_minibatches": 1, "ppo_epochs": 1, "response_length": 6}
    ppo_config = PPOConfig(policy=str(base), value_model=str(out["reward"]), use_lora=True, **ppo)
    reward = RewardScorer(out["reward"], device="cpu")
    train_ppo([p.prompt for p in prefs[:8]], ppo_config, out["ppo_lora"], reward=reward)
    sft = {**COMMON, "learning_rate": 1e-3, "max_length": 128, "warmup_ratio": 0.0, "validation_fraction": 0.2}
    train_sft(demonstrations(10), SFTConfig(base_model=str(base), lora=False, **sft), out["sft_full"])
    return out


# What each run prints, computed with nothing but the names a snippet defined (and torch / transformers).
EPILOGUES = {
    "policy": """
text = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True) + RESPONSE
ids = torch.tensor([tokenizer(text)["input_ids"]])
with torch.no_grad():
    logits = model(input_ids=ids).logits[0, :-1]
OUT = {"ids": ids[0].tolist(), "logprobs": logits.log_softmax(-1).gather(1, ids[0, 1:, None])[:, 0].tolist()}
""",
    "sequence_classifier": "OUT = rewards\n",
    "head": "OUT = [scores(MESSAGES, r) for r in RESPONSES]\n",
}
DRIVER = """
import json, sys
runs, results = json.loads(sys.argv[1]), {}
for key, code in runs.items():
    scope = {"MESSAGES": MESSAGES, "RESPONSE": RESPONSES[0], "RESPONSES": RESPONSES}
    exec(code, scope)
    results[key] = scope["OUT"]
leaked = sorted(m for m in sys.modules if m == "app" or m.startswith("app."))
print("RESULT " + json.dumps({"results": results, "leaked": leaked}))
"""


def run_plainly(runs: dict[str, str], cwd: Path) -> dict[str, object]:
    """Run each program in one fresh interpreter outside the repository; what each left in ``OUT``."""
    prelude = f"MESSAGES = {MESSAGES!r}\nRESPONSES = {RESPONSES!r}\n"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    done = subprocess.run(
        [sys.executable, "-c", prelude + DRIVER, json.dumps(runs)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    report = json.loads(line.removeprefix("RESULT "))
    assert report["leaked"] == [], f"the plain run imported project code: {report['leaked']}"
    return report["results"]


@pytest.fixture(scope="module")
def plain(folders, tmp_path_factory) -> dict[str, object]:
    """The README's snippets run against every folder they apply to."""
    snippets = readme_snippets()
    applies = {
        "policy": ["dpo_lora", "ppo_lora", "sft_full"],
        "sequence_classifier": ["reward"],
        "head": ["reward", "reward_encoder", "classifier"],
    }
    runs = {}
    for name, kinds in applies.items():
        for kind in kinds:
            code = snippets[name].replace('folder = "path/to/version"', f"folder = {str(folders[kind])!r}", 1)
            assert code != snippets[name], "a snippet must start by naming its folder"
            runs[f"{name}:{kind}"] = code + EPILOGUES[name]
    return run_plainly(runs, tmp_path_factory.mktemp("plain-cwd"))


def head_scores(folder: Path) -> torch.Tensor:
    """The project's scorer: raw head outputs [responses, labels] (a reward; a classifier's logits)."""
    from app.training.core.scoring import HeadScorer

    return HeadScorer(folder, device="cpu").raw_scores([(MESSAGES, r) for r in RESPONSES])


def test_readme_snippets_are_what_the_model_cards_show():
    assert set(readme_snippets()) == {"policy", "sequence_classifier", "head"}


def test_a_decoder_reward_model_is_an_auto_sequence_classifier(folders, plain):
    from app.training.reward.scoring import RewardScorer

    ours = torch.tensor(RewardScorer(folders["reward"], device="cpu").score([(MESSAGES, r) for r in RESPONSES]))
    theirs = torch.tensor(plain["sequence_classifier:reward"])
    assert (theirs - ours).abs().max().item() <= TOLERANCE, (theirs, ours)
    config = json.loads((folders["reward"] / "config.json").read_text())
    assert config["architectures"] == ["LlamaForSequenceClassification"] and config["id2label"] == {"0": "reward"}


@pytest.mark.parametrize("kind", ["reward", "reward_encoder", "classifier"])
def test_every_head_model_loads_with_the_documented_loader(folders, plain, kind):
    meta = json.loads((folders[kind] / "head.json").read_text())
    ours = head_scores(folders[kind])
    theirs = torch.tensor([[row[label] for label in meta["labels"]] for row in plain[f"head:{kind}"]])
    assert theirs.shape == ours.shape == (len(RESPONSES), len(meta["labels"]))
    assert (theirs - ours).abs().max().item() <= TOLERANCE, (theirs, ours)


@pytest.mark.parametrize("kind", ["dpo_lora", "ppo_lora", "sft_full"])
def test_a_policy_child_loads_as_auto_causal_lm(folders, plain, kind):
    from app.training.core.logprobs import token_logprobs
    from app.training.sft.trainer import load_policy

    model, _ = load_policy(folders[kind])
    ids = torch.tensor([plain[f"policy:{kind}"]["ids"]])
    with torch.no_grad():
        ours = token_logprobs(model(input_ids=ids).logits[:, :-1], ids[:, 1:])[0]
    theirs = torch.tensor(plain[f"policy:{kind}"]["logprobs"])
    assert (theirs - ours).abs().max().item() <= TOLERANCE
    assert not (folders[kind] / "adapter_config.json").exists()  # merged: a plain checkpoint


@pytest.mark.parametrize(
    ("kind", "tags", "pipeline"),
    [
        ("reward", {"reward-model", "rlhf"}, "text-classification"),
        ("reward_encoder", {"reward-model", "rlhf"}, "text-classification"),
        ("classifier", {"classifier", "rlhf"}, "text-classification"),
        ("dpo_lora", {"dpo", "rlhf"}, "text-generation"),
        ("ppo_lora", {"ppo", "rlhf"}, "text-generation"),
        ("sft_full", {"sft", "rlhf"}, "text-generation"),
    ],
)
def test_every_folder_has_a_hub_model_card(folders, kind, tags, pipeline):
    from huggingface_hub import ModelCard

    card = ModelCard.load(folders[kind] / "README.md")
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == pipeline
    assert tags <= set(card.data.tags)
    assert card.data.rlhf_loop["config"] and "metrics" in card.data.rlhf_loop
    if kind == "reward_encoder":
        assert card.data.base_model is None  # a local folder without a card of its own
    else:
        assert card.data.base_model == BASE_HUB_ID  # inherited from the base policy's card
    if kind in ("reward", "reward_encoder", "classifier"):
        assert card.data.eval_results and all(r.metric_name.startswith("val_") for r in card.data.eval_results)
    assert "```python" in card.text and "from_pretrained(folder)" in card.text
