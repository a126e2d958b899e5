"""Turn a GGUF file into a plain safetensors checkpoint, once, so later loads take under a second.

Loading SmolLM2 out of its GGUF dequantises every tensor (15-30 s on two cores), and the model
transformers builds from it refuses ``save_pretrained`` because its config still carries a GGUF
``quantization_config``. We therefore rebuild the same class from a clean config, copy the
dequantised weights in, and save model, tokenizer (with its chat template) and generation config.

The checkpoint is written into a temporary folder beside ``out_dir`` and renamed into place, so a
crash or a concurrent reader never sees half a checkpoint.

Run once by hand::

    python -m app.training.core.convert var/models/smollm2-135m-instruct
"""

from __future__ import annotations

import copy
import os
import shutil
import sys
import uuid
from pathlib import Path

# Files whose presence marks a finished conversion (published atomically, so all or none).
CHECKPOINT_FILES = ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json")


def is_converted_checkpoint(path: Path) -> bool:
    """Whether ``path`` holds a finished checkpoint written by this module."""
    return all((Path(path) / name).is_file() for name in CHECKPOINT_FILES)


def load_gguf_model(gguf_path: Path):  # noqa: ANN201 - a transformers causal LM
    """The GGUF model as transformers loads it: dequantised to float32, not serialisable."""
    from transformers import AutoModelForCausalLM

    gguf_path = Path(gguf_path)
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    return model.eval()


def load_gguf_tokenizer(gguf_path: Path):  # noqa: ANN201 - a transformers tokenizer
    """The tokenizer stored in the GGUF, chat template included."""
    from transformers import AutoTokenizer

    gguf_path = Path(gguf_path)
    return AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)


def plain_copy(gguf_model):  # noqa: ANN001, ANN201 - transformers causal LMs
    """The same architecture and weights without the GGUF ``quantization_config``, so that
    ``save_pretrained`` accepts it."""
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(gguf_model.config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config._name_or_path = ""  # the GGUF's internal name, meaningless for the new folder
    model = AutoModelForCausalLM.from_config(config, dtype=gguf_model.dtype)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    model.generation_config = copy.deepcopy(gguf_model.generation_config)
    model.generation_config.do_sample = True  # a policy samples; see app.training.core.run.save_policy
    return model.eval()


def convert_gguf_to_safetensors(gguf_path: Path, out_dir: Path) -> Path:
    """Convert ``gguf_path`` into a safetensors checkpoint at ``out_dir`` (replacing any there)
    and return ``out_dir``."""
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    tokenizer = load_gguf_tokenizer(gguf_path)
    model = plain_copy(load_gguf_model(gguf_path))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        model.save_pretrained(str(tmp))  # safetensors + config.json + generation_config.json
        tokenizer.save_pretrained(str(tmp))  # tokenizer.json + chat template
        if not is_converted_checkpoint(tmp):
            raise RuntimeError(f"conversion wrote an incomplete checkpoint into {tmp}")
        _publish(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def convert_default_policy(out_dir: Path) -> Path:
    """The default policy (SmolLM2-135M-Instruct) as a safetensors checkpoint at ``out_dir``;
    converted on first use only, so callers may call this on every start."""
    from app.training.core.default_models import smollm2_gguf_path

    out_dir = Path(out_dir)
    if is_converted_checkpoint(out_dir):
        return out_dir
    return convert_gguf_to_safetensors(smollm2_gguf_path(), out_dir)


def _publish(tmp: Path, out_dir: Path) -> None:
    """Move the finished ``tmp`` folder to ``out_dir``; an old checkpoint is swapped out first
    (a directory rename cannot overwrite a non-empty directory)."""
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.{uuid.uuid4().hex[:8]}.old")
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
        return
    try:
        os.replace(tmp, out_dir)
    except OSError:
        if not is_converted_checkpoint(out_dir):  # not a lost race with another converter
            raise


def main(argv: list[str] | None = None) -> int:
    """``python -m app.training.core.convert OUT_DIR [GGUF]``: convert the default policy or a given GGUF."""
    args = sys.argv[1:] if argv is None else argv
    if not args or len(args) > 2:
        print("usage: python -m app.training.core.convert OUT_DIR [GGUF_FILE]", file=sys.stderr)
        return 2
    out = (
        convert_gguf_to_safetensors(Path(args[1]), Path(args[0]))
        if len(args) == 2
        else convert_default_policy(Path(args[0]))
    )
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
