"""The scoring service and its API: batched scores with a chosen version, one load per process,
validation errors that name the field, and the reward model's agreement with later judgements."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.annotation.models import Choice
from app.auth.models import Role
from app.finetune.core import scoring
from app.finetune.core.dataset import DataFilters
from app.registry.models import ModelKind, ModelStatus, ModelVersion
from app.training.classifier.config import ClassifierConfig
from app.training.core.data import LabelledResponse, PreferenceExample
from app.training.reward.config import RewardConfig
from tests.rewards.conftest import add_pair, add_prompt_set, add_user, bearer, judge

REWARD_API, CLASSIFIER_API = "/api/v1/reward/score", "/api/v1/classifier/score"
QUESTION = [{"role": "user", "content": "How do I fix a bike?"}]


@pytest.fixture(scope="session")
def trained_folders(tmp_path_factory, tiny_backbone) -> dict[str, Path]:
    """A tiny reward model and a tiny classifier, trained once (one epoch: only their wiring is tested)."""
    from app.training.classifier.trainer import train_classifier
    from app.training.reward.trainer import train_reward_model

    root = tmp_path_factory.mktemp("scoring")
    common = {
        "backbone": str(tiny_backbone),
        "epochs": 1,
        "batch_size": 4,
        "num_threads": 1,
        "use_cpu": True,
        "validation_fraction": 0.0,
        "checkpoint_every": 0,
    }
    prefs = [PreferenceExample(f"q{i}", "good answer", "bad answer", id=i) for i in range(8)]
    labelled = [LabelledResponse(f"q{i}", "answer", {"quality": float(i % 2), "safety": 1.0}, id=i) for i in range(8)]
    train_reward_model(prefs, RewardConfig(**common), root / "rm")
    train_classifier(labelled, ClassifierConfig(**common), root / "cls")
    return {"reward": root / "rm", "classifier": root / "cls"}


def add_version(db, kind: ModelKind, path: Path, status: ModelStatus = ModelStatus.ready) -> ModelVersion:
    version = ModelVersion(name=f"{kind.value}-{path.name}-{status.value}", kind=kind, path=str(path), status=status)
    db.add(version)
    db.flush()
    return version


@pytest.fixture()
def researcher_api(db) -> dict[str, str]:
    return bearer(db, Role.researcher)


class TestRewardScoreApi:
    def test_scores_each_item_in_order_with_plain_or_chat_prompts(self, client, db, researcher_api, trained_folders):
        version = add_version(db, ModelKind.reward, trained_folders["reward"])
        items = [
            {"prompt": "How do I fix a bike?", "response": "Sure, first …"},
            {"messages": QUESTION, "response": "Sure, first …"},
            {"prompt": "Hi", "response": "Go away."},
        ]
        response = client.post(REWARD_API, json={"version_id": version.id, "items": items}, headers=researcher_api)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["version_id"] == version.id and len(body["scores"]) == 3
        assert body["scores"][0] == pytest.approx(body["scores"][1])  # a plain prompt is one user turn
        direct = scoring.score_rewards(db, version_id=version.id, items=[(QUESTION, "Sure, first …")])
        assert direct[0] == pytest.approx(body["scores"][1], abs=1e-5)

    @pytest.mark.parametrize(
        ("items", "field"),
        [
            ([], "items"),
            ([{"response": "x"}], "items.0"),
            ([{"prompt": "p", "messages": QUESTION, "response": "x"}], "items.0"),
            ([{"prompt": "p"}], "items.0.response"),
            ([{"prompt": "p", "response": "x" * 20_001}], "items.0.response"),
            ([{"messages": [{"role": "robot", "content": "x"}], "response": "x"}], "items.0.messages.0.role"),
            ([{"prompt": "p", "response": "x", "colour": "red"}], "items.0.colour"),
        ],
    )
    def test_bad_bodies_are_422_naming_the_field(self, client, db, researcher_api, items, field):
        response = client.post(REWARD_API, json={"version_id": 1, "items": items}, headers=researcher_api)
        assert response.status_code == 422, response.text
        assert field in [error["field"] for error in response.json()["errors"]]

    def test_unknown_wrong_kind_or_unusable_versions(self, client, db, researcher_api, trained_folders):
        body = {"items": [{"prompt": "p", "response": "r"}]}
        missing = client.post(REWARD_API, json={**body, "version_id": 999_999}, headers=researcher_api)
        assert missing.status_code == 404
        classifier = add_version(db, ModelKind.classifier, trained_folders["classifier"])
        assert (
            client.post(REWARD_API, json={**body, "version_id": classifier.id}, headers=researcher_api).status_code
            == 404
        )
        archived = add_version(db, ModelKind.reward, trained_folders["reward"], ModelStatus.archived)
        gone = client.post(REWARD_API, json={**body, "version_id": archived.id}, headers=researcher_api)
        assert gone.status_code == 409 and gone.json()["field"] == "version_id"
        assert (
            client.post(REWARD_API, json={**body, "version_id": 0}, headers=researcher_api).json()["errors"][0]["field"]
            == "version_id"
        )

    def test_annotators_and_strangers_may_not_score(self, client, db):
        body = {"version_id": 1, "items": [{"prompt": "p", "response": "r"}]}
        assert client.post(REWARD_API, json=body).status_code == 401
        assert client.post(REWARD_API, json=body, headers=bearer(db, Role.annotator)).status_code == 403


def test_classifier_api_gives_a_probability_per_head(client, db, researcher_api, trained_folders):
    version = add_version(db, ModelKind.classifier, trained_folders["classifier"])
    items = [{"prompt": "q1", "response": "answer"}, {"messages": QUESTION, "response": "no"}]
    response = client.post(CLASSIFIER_API, json={"version_id": version.id, "items": items}, headers=researcher_api)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["labels"] == ["quality", "safety"] and len(body["scores"]) == 2
    assert all(0.0 <= p <= 1.0 for row in body["scores"] for p in row.values())
    bad = client.post(
        CLASSIFIER_API, json={"version_id": version.id, "items": [{"prompt": "q"}]}, headers=researcher_api
    )
    assert bad.status_code == 422 and "items.0.response" in bad.json()["detail"]


def test_a_version_is_loaded_once_per_process(db, trained_folders, monkeypatch):
    from app.training.reward import scoring as reward_scoring

    loads: list[str] = []
    real = reward_scoring.RewardScorer

    def counting(path: str) -> object:
        loads.append(path)
        return real(path, device="cpu")

    monkeypatch.setattr(reward_scoring, "RewardScorer", counting)
    scoring.CACHE.clear()
    version = add_version(db, ModelKind.reward, trained_folders["reward"])
    first = scoring.score_rewards(db, version_id=version.id, items=[("q", "a"), ("q", "b")])
    second = scoring.score_rewards(db, version_id=version.id, items=[("q", "b")])
    assert loads == [str(trained_folders["reward"])] and second[0] == pytest.approx(first[1], abs=1e-5)


class LengthScorer:
    """A stand-in reward model: longer answers score higher."""

    def score(self, pairs):
        return [float(len(response)) for _, response in pairs]


def test_agreement_counts_later_ab_judgements_ranked_the_humans_way(db):
    trained_at = datetime(2026, 3, 1, tzinfo=UTC)
    version = ModelVersion(name="rm-agree", kind=ModelKind.reward, path="/nowhere", created_at=trained_at)
    db.add(version)
    prompt_set, ann = add_prompt_set(db), add_user(db)
    after = trained_at + timedelta(days=1)
    long_short = add_pair(db, prompt_set, "q1", "a long detailed answer", "short")
    judge(db, long_short, ann, Choice.a, created_at=after)  # agrees: the longer side was chosen
    short_long = add_pair(db, prompt_set, "q2", "brief", "a much longer answer")
    judge(db, short_long, ann, Choice.a, created_at=after)  # disagrees
    judge(db, add_pair(db, prompt_set, "q3", "x", "yy"), ann, Choice.b, created_at=after)  # agrees
    judge(db, add_pair(db, prompt_set, "q4", "x", "yy"), ann, Choice.tie, created_at=after)  # not a pair
    judge(
        db, add_pair(db, prompt_set, "q5", "xxx", "y"), ann, Choice.b, created_at=trained_at - timedelta(days=1)
    )  # seen

    report = scoring.agreement(db, version_id=version.id, scorer=LengthScorer())
    assert (report.judgements, report.agreed, report.rate, report.since) == (3, 2, pytest.approx(2 / 3), trained_at)
    later = scoring.agreement(db, version_id=version.id, scorer=LengthScorer(), since=after + timedelta(hours=1))
    assert (later.judgements, later.rate) == (0, None)
    other_set = scoring.agreement(
        db, version_id=version.id, scorer=LengthScorer(), filters=DataFilters(prompt_set_ids=[add_prompt_set(db).id])
    )
    assert other_set.judgements == 0
