"""What an export contains: its format and the filters that choose the rows.

One pydantic model (``ExportParams``) serves the export job's parameters, the admin form and the
CLI alike, so every entry point validates the same way and a job re-run after a crash exports
exactly what was asked for the first time. Its ids and numbers are :mod:`app.bounds`' types, so an id
no database column holds is refused here, before a streamed download has sent its first byte.
"""

from __future__ import annotations

import enum
from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.bounds import Bool, Float, Id
from app.errors import Invalid
from app.text import first_unstorable

MAX_ANNOTATORS = 200  # names in an include or exclude list; more is a typo, not a filter


class ExportFormat(enum.StrEnum):
    trl = "trl"  # {"prompt", "chosen", "rejected"} as strings (TRL's standard preference format)
    trl_conversational = "trl_conversational"  # the same with message lists
    hh = "hh"  # {"chosen", "rejected"} as '\n\nHuman: …\n\nAssistant: …' transcripts
    csv = "csv"  # one row per judgement (or majority), every column
    parquet = "parquet"  # the CSV's columns, typed
    hf = "hf"  # a Hugging Face datasets folder (save_to_disk), zipped
    sft = "sft"  # demonstrations as {"messages": […]}
    labels = "labels"  # per-response labels as {"prompt", "response", "quality", "safety"}

    @property
    def source(self) -> str:
        """Which table the rows come from: judgements, demonstrations or labels."""
        return {"sft": "demonstrations", "labels": "labels"}.get(self.value, "judgements")

    @property
    def preference(self) -> bool:
        """Chosen/rejected formats: a tie or a both-bad verdict has no chosen side, so it is never written."""
        return self in (ExportFormat.trl, ExportFormat.trl_conversational, ExportFormat.hh, ExportFormat.hf)

    @property
    def streamable(self) -> bool:
        """Text formats that can be streamed straight into an HTTP response."""
        return self not in (ExportFormat.parquet, ExportFormat.hf)

    @property
    def suffix(self) -> str:
        return {"csv": ".csv", "parquet": ".parquet", "hf": ".zip"}.get(self.value, ".jsonl")

    @property
    def media_type(self) -> str:
        return {
            "csv": "text/csv; charset=utf-8",
            "parquet": "application/vnd.apache.parquet",
            "hf": "application/zip",
        }.get(self.value, "application/x-ndjson")


class Keep(enum.StrEnum):
    drop = "drop"
    keep = "keep"


class Aggregation(enum.StrEnum):
    every = "every"  # one row per judgement
    majority = "majority"  # one row per pair: its majority verdict (pairs without one are dropped)


Names = Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]], Field(max_length=MAX_ANNOTATORS)]


class ExportFilters(BaseModel):
    """Which rows to export. Dates are inclusive UTC days; None means no bound."""

    model_config = ConfigDict(extra="forbid")

    prompt_set_id: Id | None = Field(None, description="Only prompts of this set.")
    date_from: date | None = Field(None, description="Judged (or written) on or after this day (UTC).")
    date_to: date | None = Field(None, description="Judged (or written) on or before this day (UTC).")
    include_annotators: Names = Field(default_factory=list, description="Only these usernames (empty: everyone).")
    exclude_annotators: Names = Field(default_factory=list, description="Never these usernames.")
    policy_version_id: Id | None = Field(None, description="Only pairs with a response from this policy version.")
    min_agreement: Float = Field(
        0.0, ge=0.0, le=1.0, description="Share of a pair's judgements that agree with its majority."
    )
    ties: Keep = Field(Keep.drop, description="Tie verdicts (table formats only; preference formats always drop them).")
    both_bad: Keep = Field(Keep.drop, description="Both-bad verdicts (table formats only).")
    aggregation: Aggregation = Field(Aggregation.every, description="Every judgement, or each pair's majority.")
    include_quarantined: Bool = Field(
        False, description="Also the work of quarantined annotators (left out by default)."
    )

    @model_validator(mode="after")
    def _dates_in_order(self) -> ExportFilters:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError("date_from must not be after date_to")
        return self


class ExportParams(ExportFilters):
    """The export job's parameters: a format and the filters."""

    format: ExportFormat = Field(ExportFormat.trl, description="The file format.")


def parse_params(raw: dict[str, Any], *, from_text: bool = False) -> ExportParams:
    """Validate export parameters from any entry point; ``Invalid`` names the first bad field.

    ``from_text``: the values are a form's or a command line's strings, so ``"3"`` may stand for 3 (JSON
    parameters are strict: there 3 must be a number)."""
    try:
        params = ExportParams.model_validate(raw, strict=False if from_text else None)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error.get("loc", ())) or "params"
        raise Invalid(where, str(error.get("msg", "invalid")).removeprefix("Value error, ")) from None
    bad = first_unstorable(params.model_dump(mode="json"))
    if bad is not None:  # a NUL in a name would fail the query after a download's headers were sent
        raise Invalid(*bad)
    return params


def split_names(value: str | None) -> list[str]:
    """Usernames typed into a form or on the command line, comma- or space-separated."""
    return [name for name in (value or "").replace(",", " ").split() if name]


FORM_FIELDS = (
    "format",
    "prompt_set_id",
    "date_from",
    "date_to",
    "policy_version_id",
    "min_agreement",
    "ties",
    "both_bad",
    "aggregation",
    "include_quarantined",
)
NAME_FIELDS = ("include_annotators", "exclude_annotators")  # usernames, comma- or space-separated


def params_from_strings(data: Any) -> ExportParams:
    """Export parameters from a form or a query string (a mapping of strings): blank means "no filter"."""
    raw: dict[str, Any] = {}
    for name in FORM_FIELDS:
        value = data.get(name)
        if isinstance(value, str) and value.strip():
            raw[name] = value.strip()
    for name in NAME_FIELDS:
        raw[name] = split_names(data.get(name))
    return parse_params(raw, from_text=True)
