"""Publishing a version folder to the Hugging Face Hub: the folder is already a Hub repository's content
(weights, tokenizer, and a model card with the Hub's metadata), so this is one upload, by ``huggingface_hub``.

Resumable training state and the project's own card stay home: a version's folder holds neither a checkpoint
nor anything private, but a stray ``*.pt`` left by hand would be, so it is never uploaded.
"""

from __future__ import annotations

import os
from pathlib import Path

from app.errors import Invalid

IGNORED = ["*.pt", "*.tmp", ".*"]


def push_folder(folder: Path, repo_id: str, *, private: bool, token: str | None, message: str) -> str:
    """Upload ``folder`` to the model repository ``repo_id`` (created when missing); returns its URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise Invalid("repo", str(exc).splitlines()[0]) from None
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise Invalid("repo", "HF_HUB_OFFLINE is set: the Hub cannot be reached from this process")
    if not (folder / "config.json").is_file():
        raise Invalid("version", f"{folder} holds no model to upload")
    api = HfApi(token=token)
    url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=message, ignore_patterns=IGNORED)
    return str(url)
