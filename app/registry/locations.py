"""Where a job may load a model from, decided when a person queues it: the ``ModelLocation`` field type.

A job's model parameter (a reward or classifier job's ``backbone``, the bootstrap's ``model``) is a string
that transformers would read as a folder or fetch as a hub id. Checked only when the job ran, it let anyone
who may queue a job name any path on the server, and the job's error then told them what exists there. So
it is checked at queue time against a rule that looks at the string, never at the disk:

- a shipped default (``all-MiniLM-L6-v2``, or the empty string where a field means "the default");
- a folder under the models folder (``RLHF_MODELS_DIR``), symbolic links resolved;
- the folder of a registered model version;
- a Hugging Face id (``name`` or ``org/name``), only when the admin allows hub access (``RLHF_ALLOW_HUB_MODELS``).

Anything else, a URL included, is refused with one message whatever the path is and whether it exists,
so the refusal reveals nothing about the filesystem. The check needs the database and the settings, which
``jobs.registry.validate_params`` hands over in its validation context when a person queues the job; the
worker's re-validation of stored parameters and the jobs the app queues itself carry none and skip it.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, ValidationInfo
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.jobs.registry import QUEUE_CONTEXT, QueueContext
from app.registry.models import ModelVersion
from app.training.core.config import DEFAULT_BACKBONE
from app.training.core.default_models import MissingModelPackage, minilm_path

# A hub repository id: a name, or an owner and a name; no "..", no leading dot, no scheme.
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?$")
REFUSED = (
    "not an allowed model location: name a registered version's folder, a folder under the models folder, "
    "or the shipped default"
)


def refusal(settings: Settings) -> str:
    """The one message for every refused location (it names the rule, never the path or what is there)."""
    if settings.allow_hub_models:
        return REFUSED + ", or a Hugging Face id (owner/name)"
    return REFUSED + "; Hugging Face ids need hub access, which the admin has not allowed"


def shipped_defaults() -> set[str]:
    """The names and folders of the models the app ships (``training.core.default_models``)."""
    names = {"", DEFAULT_BACKBONE}
    with contextlib.suppress(MissingModelPackage):  # not installed: its folder is no location at all
        names.add(str(minilm_path()))
    return names


def _resolved(text: str) -> Path | None:
    """``text`` as an absolute path with links resolved, without requiring it to exist."""
    try:
        return Path(os.path.realpath(text))
    except (ValueError, OSError):  # a NUL, a path too long to resolve
        return None


def _under(path: Path, folder: Path) -> bool:
    return path != folder and folder in path.parents


def allowed(db: Session, settings: Settings, location: str) -> bool:
    """Whether a job may load its model from ``location`` (see the module docstring for the rule)."""
    text = location.strip()
    if text in shipped_defaults():
        return True
    if "://" in text or "\x00" in text:
        return False
    resolved = _resolved(text)
    if resolved is not None:
        models = _resolved(str(settings.resolved_models_dir))
        if models is not None and _under(resolved, models):
            return True
        candidates = {text, str(resolved)}
        if db.scalar(select(ModelVersion.id).where(ModelVersion.path.in_(candidates)).limit(1)) is not None:
            return True
    return settings.allow_hub_models and HUB_ID.fullmatch(text) is not None


def _check(value: str, info: ValidationInfo) -> str:
    queue = (info.context or {}).get(QUEUE_CONTEXT)
    if isinstance(queue, QueueContext) and not allowed(queue.db, queue.settings, value):
        raise ValueError(refusal(queue.settings))
    return value


# A job parameter naming where a model is loaded from; checked when a person queues the job.
ModelLocation = Annotated[str, AfterValidator(_check)]
