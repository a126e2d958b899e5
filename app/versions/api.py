"""JSON API for the model registry: researchers list, inspect, promote and archive versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from app.auth.policy import Access, allow
from app.bounds import Bool, Float, Int
from app.deps import DbDep, SettingsDep
from app.registry import service
from app.registry.models import ModelKind, ModelStatus
from app.registry.serving import ServerSpec, serve_from, serve_in_process
from app.versions import promotion

router = APIRouter(prefix="/api/v1/models", tags=["models"], dependencies=[allow(Access.researcher)])
# Where generation goes is an admin's choice: a server URL and the name of a key variable are operations.
serving_router = APIRouter(prefix="/api/v1/models", tags=["models"], dependencies=[allow(Access.admin)])


class ModelVersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    kind: ModelKind
    status: ModelStatus
    parent_id: int | None
    base_model: str
    path: str
    metrics: dict[str, Any]
    config: dict[str, Any]
    created_by_job_id: int | None
    created_at: datetime
    promoted_at: datetime | None


class PromotionOut(BaseModel):
    promoted: ModelVersionOut
    previous_id: int | None
    retired_pairs: int  # unjudged pending pairs of the previous policy retired
    generate_job_id: int | None  # the job refilling the pool, when one was queued


@router.get("", response_model=list[ModelVersionOut])
def list_versions(db: DbDep, kind: ModelKind | None = None, include_archived: bool = True) -> list[Any]:
    """Registered model versions (policies, reward models, classifiers), optionally of one kind."""
    return service.list_versions(db, kind=kind, include_archived=include_archived)


@router.get("/{version_id}", response_model=ModelVersionOut)
def get_version(db: DbDep, version_id: int) -> Any:
    """One model version."""
    return service.get_version(db, version_id)


@router.post("/{version_id}/promote", response_model=PromotionOut)
def promote(db: DbDep, settings: SettingsDep, version_id: int) -> PromotionOut:
    """Make this policy the promoted one; the pool retires the old policy's unjudged pairs and refills."""
    result = promotion.promote(db, settings, version_id=version_id)
    return PromotionOut(
        promoted=ModelVersionOut.model_validate(result.promoted),
        previous_id=result.previous.id if result.previous else None,
        retired_pairs=result.retired,
        generate_job_id=result.job.id if result.job else None,
    )


@router.post("/{version_id}/archive", response_model=ModelVersionOut)
def archive(db: DbDep, version_id: int) -> Any:
    """Archive a version (never the promoted policy); its folder stays where it is."""
    return service.archive(db, version_id=version_id)


class ServingIn(BaseModel):
    """An OpenAI-compatible server for a policy version (vLLM, SGLang, TGI, llama.cpp, ``transformers serve``)."""

    model_config = ConfigDict(extra="forbid")
    base_url: str = Field(max_length=2000, description="The server's OpenAI API root, e.g. http://gpu-box:8000/v1")
    load: Literal["fixed", "by_path", "lora"] = Field(
        "fixed",
        description="How the server takes the versions trained from this one: by_path (it loads a model named by "
        "its folder), lora (vLLM runtime LoRA loading of each child's adapter), fixed (one model; children are "
        "served in process until pointed at a server).",
    )
    model: str | None = Field(
        None, max_length=1000, description="The model name the server serves; default: the folder (by_path)."
    )
    api_key_env: str | None = Field(
        None, max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Environment variable with the key."
    )
    expect_model: Bool = Field(True, description="Refuse replies that name another model (off for TGI).")
    timeout_s: Float = Field(120.0, gt=0, le=3600, description="Seconds to wait for one completion.")
    max_concurrency: Int = Field(8, ge=1, le=256, description="Requests in flight to the server at once.")


@serving_router.put("/{version_id}/serving", response_model=ModelVersionOut)
def set_serving(db: DbDep, version_id: int, body: ServingIn) -> Any:
    """Serve this policy from an OpenAI-compatible server: the pool, chat and evaluation generate there."""
    version = serve_from(db, version_id, ServerSpec(**body.model_dump()))
    db.commit()
    return version


@serving_router.delete("/{version_id}/serving", response_model=ModelVersionOut)
def clear_serving(db: DbDep, version_id: int) -> Any:
    """Serve this policy in the app's own warm process again, from its folder."""
    version = serve_in_process(db, version_id)
    db.commit()
    return version
