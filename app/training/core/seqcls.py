"""A decoder reward model as the rest of the ecosystem knows one: ``AutoModelForSequenceClassification``.

Transformers' sequence classifiers on causal LMs (``LlamaForSequenceClassification`` and the like) are
exactly a :class:`~app.training.core.heads.PooledHeadModel` with last-token pooling and a bias-free
linear head (``score``), read at the rightmost token that is not the pad token. Such a model is therefore
saved in that form, and plain ``transformers``, TRL's trainers and any serving stack that knows reward
models load it and compute the same scores; ``head.safetensors`` beside it keeps our own loader unchanged.

One catch: the text ends with EOS, and many tokenizers (SmolLM2's) pad with EOS, so the classifier would
read the token before it. The saved tokenizer and config then name another special token (the unknown
token) as the pad, which only ever fills padding; where there is none, the model is not saved this way.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from app.training.core.heads import PooledHeadModel


def distinct_pad_id(tokenizer: Any) -> int | None:
    """A pad id that is not EOS: the tokenizer's own pad, else its unknown token; None when neither is."""
    eos = tokenizer.eos_token_id
    for candidate in (tokenizer.pad_token_id, tokenizer.unk_token_id):
        if candidate is not None and candidate != eos:
            return int(candidate)
    return None


def as_sequence_classifier(model: PooledHeadModel, pad_id: int) -> Any | None:
    """The transformers sequence classifier that computes ``model``'s scores, sharing its modules (no
    copy of the weights); None when transformers has no such class or the head is not of its kind."""
    from transformers import AutoModelForSequenceClassification

    if model.encoder or model.pooling != "last" or model.head.bias is not None:
        return None
    config = copy.deepcopy(model.backbone.config)  # the trained model's own config stays as it was
    config.num_labels = len(model.labels)
    config.id2label = dict(enumerate(model.labels))
    config.label2id = {label: i for i, label in enumerate(model.labels)}
    config.pad_token_id = pad_id
    try:
        with torch.device("meta"):  # the shell only: its backbone and head are replaced by ours below
            classifier = AutoModelForSequenceClassification.from_config(config)
    except ValueError:  # no sequence-classification class for this architecture
        return None
    prefix = classifier.base_model_prefix
    if type(getattr(classifier, prefix, None)) is not type(model.backbone) or not hasattr(classifier, "score"):
        return None
    setattr(classifier, prefix, model.backbone)
    classifier.score = model.head
    return classifier


def save_sequence_classifier(model: PooledHeadModel, tokenizer: Any, folder: Path) -> bool:
    """Save ``model`` and ``tokenizer`` into ``folder`` as a sequence-classification checkpoint; False (and
    nothing written) when it cannot be expressed as one."""
    pad_id = distinct_pad_id(tokenizer)
    classifier = as_sequence_classifier(model, pad_id) if pad_id is not None else None
    if classifier is None:
        return False
    classifier.save_pretrained(str(folder))
    own_pad = tokenizer.pad_token
    tokenizer.pad_token = tokenizer.convert_ids_to_tokens(pad_id)
    try:
        tokenizer.save_pretrained(str(folder))
    finally:
        tokenizer.pad_token = own_pad  # the caller's tokenizer is left as it came
    return True
