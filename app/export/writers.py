"""Writing a stream of records in each format, a bounded batch at a time.

Text formats (JSONL, CSV) are produced as chunks of text, so the same code fills a file or an
HTTP response. Parquet is written row group by row group with pyarrow. The Hugging Face folder
is built from a JSONL file by ``datasets`` (which converts it to Arrow in blocks, memory-mapped)
and zipped; none of them holds the whole export in memory.
"""

from __future__ import annotations

import csv
import io
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from app.export.dataset_card import write_dataset_card
from app.export.filters import ExportFormat
from app.export.records import TABLE_COLUMNS, csv_cell, json_line

CHUNK_ROWS = 500  # records per text chunk
ROW_GROUP = 5_000  # records per Parquet row group


def _batches(records: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(records)
    while batch := list(islice(iterator, size)):
        yield batch


def jsonl_chunks(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    for batch in _batches(records, CHUNK_ROWS):
        yield "".join(json_line(record) for record in batch)


def csv_chunks(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """RFC 4180 CSV with a header; every cell neutralised against formula injection."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(TABLE_COLUMNS)
    yield buffer.getvalue()
    for batch in _batches(records, CHUNK_ROWS):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([csv_cell(record[c]) for c in TABLE_COLUMNS] for record in batch)
        yield buffer.getvalue()


def text_chunks(fmt: ExportFormat, records: Iterable[dict[str, Any]]) -> Iterator[str]:
    if not fmt.streamable:
        raise ValueError(f"{fmt.value} is not a text format")
    return csv_chunks(records) if fmt is ExportFormat.csv else jsonl_chunks(records)


def _parquet_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("pair_id", pa.int64()),
            ("judgement_ids", pa.string()),
            ("prompt_set_id", pa.int64()),
            ("prompt", pa.string()),
            ("response_a", pa.string()),
            ("response_b", pa.string()),
            ("choice", pa.string()),
            ("chosen", pa.string()),
            ("rejected", pa.string()),
            ("strength", pa.int64()),
            ("annotator", pa.string()),
            ("seconds", pa.float64()),
            ("created_at", pa.string()),
            ("policy_version_a", pa.int64()),
            ("policy_version_b", pa.int64()),
            ("judgements", pa.int64()),
            ("agreement", pa.float64()),
            ("elo_a", pa.float64()),
            ("elo_b", pa.float64()),
            ("elo_reward_a", pa.float64()),
            ("elo_reward_b", pa.float64()),
        ]
    )


def write_parquet(path: Path, records: Iterable[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _parquet_schema()
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for batch in _batches(records, ROW_GROUP):
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
        # An empty export still yields a readable file with the schema (the writer wrote it).


def write_hf_zip(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """A ``save_to_disk`` folder named ``dataset/`` inside a zip, with its dataset card; ``load_from_disk``
    reads it back."""
    from datasets import Dataset, Features, Value

    features = Features({"prompt": Value("string"), "chosen": Value("string"), "rejected": Value("string")})
    with tempfile.TemporaryDirectory(prefix="rlhf-hf-export-") as tmp:
        work = Path(tmp)
        source = work / "rows.jsonl"
        with source.open("w", encoding="utf-8") as out:
            for chunk in jsonl_chunks(records):
                out.write(chunk)
        if source.stat().st_size:
            dataset = Dataset.from_json(
                str(source), features=features, cache_dir=str(work / "cache"), keep_in_memory=False
            )
        else:
            dataset = Dataset.from_dict({"prompt": [], "chosen": [], "rejected": []}, features=features)
        dataset.save_to_disk(str(work / "dataset"))
        write_dataset_card(work / "dataset", dataset)
        del dataset
        _zip_folder(work / "dataset", path)


def _zip_folder(folder: Path, path: Path) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, Path("dataset") / file.relative_to(folder))


def write_file(fmt: ExportFormat, path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Write the whole export to ``path`` (the caller renames it into place when done)."""
    if fmt is ExportFormat.parquet:
        write_parquet(path, records)
    elif fmt is ExportFormat.hf:
        write_hf_zip(path, records)
    else:
        with path.open("w", encoding="utf-8", newline="") as out:
            for chunk in text_chunks(fmt, records):
                out.write(chunk)


def unzip_dataset(path: Path, into: Path) -> Path:
    """Unpack an hf export; returns the folder ``datasets.load_from_disk`` takes."""
    with zipfile.ZipFile(path) as archive:
        archive.extractall(into)
    return into / "dataset"
