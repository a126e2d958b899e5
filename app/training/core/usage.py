"""How a saved version is used with plain transformers, no RLHF Loop code: the snippets that each model
card shows and that the README's "Using a version outside RLHF Loop" repeats word for word (a test runs
the README's copies against every kind of folder and compares their outputs with our own scorers).

Each snippet is a whole program whose first assignment names the folder (``folder = "path/to/version"``).
"""

from __future__ import annotations

import json
from pathlib import Path

POLICY = """\
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

folder = "path/to/version"  # its folder (rlhf models list), or the Hub repo it was uploaded to
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder)  # LoRA-trained versions are saved merged: no peft
messages = [{"role": "user", "content": "How do I fix a bike?"}]
inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True, return_tensors="pt")
with torch.no_grad():
    answer = model.generate(**inputs, max_new_tokens=32)[0, inputs["input_ids"].shape[1] :]
print(tokenizer.decode(answer, skip_special_tokens=True))
"""

SEQUENCE_CLASSIFIER = """\
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

folder = "path/to/version"  # a reward model whose config.json names a *ForSequenceClassification
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForSequenceClassification.from_pretrained(folder)
messages = [{"role": "user", "content": "How do I fix a bike?"}]
responses = ["Check the chain first, then the brakes.", "No idea."]
prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
texts = [prompt + response + tokenizer.eos_token for response in responses]  # scored as trained: EOS last
with torch.no_grad():
    rewards = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits[:, 0].tolist()
print(rewards)
"""

HEAD = r"""import json

import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer

folder = "path/to/version"  # any reward model or classifier
meta = json.load(open(f"{folder}/head.json"))  # labels, pooling, encoder, max_length
head = load_file(f"{folder}/head.safetensors")  # weight [labels, hidden] (and bias)
tokenizer = AutoTokenizer.from_pretrained(folder)
backbone = AutoModel.from_pretrained(folder)


def scores(messages, response):
    # {label: head output}: a reward, or a classifier's logit (its sigmoid is P(label))
    limit = meta.get("max_length", 512)
    if meta["encoder"]:  # [CLS] prompt [SEP] response [SEP], the prompt as "role: content" lines
        prompt = "\n".join(f"{m['role']}: {m['content']}" for m in messages)
        inputs = tokenizer(prompt, response, truncation="longest_first", max_length=limit, return_tensors="pt")
    else:  # the chat-templated prompt, the response and EOS: its last max_length tokens
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(prompt + response + tokenizer.eos_token)["input_ids"][-limit:]
        inputs = {"input_ids": torch.tensor([ids])}
    with torch.no_grad():
        hidden = backbone(**inputs).last_hidden_state[0]  # [tokens, hidden]
    pooled = {"mean": hidden.mean(0), "last": hidden[-1], "cls": hidden[0]}[meta["pooling"]]
    return dict(zip(meta["labels"], (head["weight"] @ pooled + head.get("bias", 0)).tolist()))


print(scores([{"role": "user", "content": "How do I fix a bike?"}], "Check the chain first, then the brakes."))
"""

SNIPPETS = {"policy": POLICY, "sequence_classifier": SEQUENCE_CLASSIFIER, "head": HEAD}


def loader_of(folder: Path) -> str:
    """Which snippet loads ``folder``: ``policy``, ``sequence_classifier`` or ``head`` (a custom head)."""
    folder = Path(folder)
    if not (folder / "head.json").is_file():
        return "policy"
    architectures = json.loads((folder / "config.json").read_text()).get("architectures") or []
    return "sequence_classifier" if any(a.endswith("ForSequenceClassification") for a in architectures) else "head"
