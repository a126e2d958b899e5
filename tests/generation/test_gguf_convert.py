"""GGUF -> safetensors conversion: the result loads fast and decodes exactly as the GGUF model
does (``real_models``), and the write is atomic: a crash leaves no half checkpoint behind.

The non-real tests stand a tiny Llama in for the GGUF model: ``plain_copy`` and the atomic
publish are what they check, not GGUF parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from app.training.core import convert


@pytest.fixture
def fake_gguf(monkeypatch: pytest.MonkeyPatch, tiny_model, smollm2_tokenizer):
    """Make ``convert`` read a tiny Llama (flagged as GGUF-quantised, as transformers leaves
    it) and the cached tokenizer instead of a GGUF file."""
    tiny_model.config.quantization_config = {"quant_method": "gguf", "gguf_file": "fake.gguf"}
    monkeypatch.setattr(convert, "load_gguf_model", lambda path: tiny_model)
    monkeypatch.setattr(convert, "load_gguf_tokenizer", lambda path: smollm2_tokenizer)
    yield tiny_model
    del tiny_model.config.quantization_config


def test_converted_checkpoint_is_plain_and_identical(tmp_path: Path, fake_gguf) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = convert.convert_gguf_to_safetensors(Path("fake.gguf"), tmp_path / "policy")

    assert convert.is_converted_checkpoint(out)
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    loaded = AutoModelForCausalLM.from_pretrained(out)
    for name, tensor in fake_gguf.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert AutoTokenizer.from_pretrained(out).chat_template
    assert [p.name for p in tmp_path.iterdir()] == ["policy"]  # no temp folder left over


def test_crash_mid_write_leaves_nothing_and_keeps_the_old_checkpoint(
    tmp_path: Path,
    fake_gguf,
    smollm2_tokenizer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = convert.convert_gguf_to_safetensors(Path("fake.gguf"), tmp_path / "policy")
    before = (out / "model.safetensors").read_bytes()

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(smollm2_tokenizer, "save_pretrained", crash)
    with pytest.raises(OSError, match="disk full"):
        convert.convert_gguf_to_safetensors(Path("fake.gguf"), out)
    with pytest.raises(OSError, match="disk full"):
        convert.convert_gguf_to_safetensors(Path("fake.gguf"), tmp_path / "fresh")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy"]
    assert (out / "model.safetensors").read_bytes() == before


def test_default_policy_is_converted_once(tmp_path: Path, fake_gguf, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("app.training.core.default_models.smollm2_gguf_path", lambda: Path("fake.gguf"))
    out = convert.convert_default_policy(tmp_path / "policy")
    monkeypatch.setattr(convert, "load_gguf_model", lambda path: pytest.fail("converted twice"))

    assert convert.convert_default_policy(out) == out


@pytest.mark.real_models
def test_smollm2_conversion_decodes_like_the_gguf(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from app.training.core.default_models import smollm2_gguf_path

    gguf = smollm2_gguf_path()
    out = convert.convert_gguf_to_safetensors(gguf, tmp_path / "smollm2")

    # The load time itself is printed by bench/generation.py (tests never assert on time); here:
    # the checkpoint is plain safetensors that loads without the GGUF file or its dequantiser.
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.gguf"))
    converted = AutoModelForCausalLM.from_pretrained(out)
    assert getattr(converted.config, "quantization_config", None) is None

    tokenizer = AutoTokenizer.from_pretrained(out)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    reference = convert.load_gguf_model(gguf)
    with torch.inference_mode():
        want = reference.generate(**prompt, max_new_tokens=12, do_sample=False)
        got = converted.eval().generate(**prompt, max_new_tokens=12, do_sample=False)
    assert got.tolist() == want.tolist()
