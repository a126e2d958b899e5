"""Export throughput and memory: a million judgements streamed out of PostgreSQL.

    .venv/bin/python bench/export.py                      # generate 1,000,000 judgements, export, drop the database
    .venv/bin/python bench/export.py --judgements 100000  # a quicker run
    .venv/bin/python bench/export.py --format csv --aggregation majority

The data is generated inside PostgreSQL with ``generate_series`` (500,000 pairs judged twice by 50
annotators, 100,000 prompts, realistic text lengths) in a scratch database that is dropped at the
end. The export then runs in a fresh Python process, so its peak resident memory (``ru_maxrss``)
is the export's own: imports, the chunked reads, the writer. It prints rows/s and peak RSS, and
ends with one JSON line. The acceptance bar is a peak under 300 MB. Uses ``RLHF_TEST_PG_URL``
(default ``postgresql://postgres@127.0.0.1:5432/test``) to create the scratch database.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text

PG_URL = os.environ.get("RLHF_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
LIMIT_MB = 300
ANNOTATORS = 50

GENERATE = [
    "INSERT INTO users (username, password_hash, role, is_active, created_at) "
    "SELECT 'bench' || g, '!', 'annotator', true, now() FROM generate_series(1, :annotators) g",
    "INSERT INTO prompt_sets (name, description, status, guidelines, guidelines_version, created_at) "
    "VALUES ('bench', '', 'active', '', 0, now())",
    "INSERT INTO prompts (prompt_set_id, messages, content_hash, source, tags, red_team, retired, created_at) "
    "SELECT (SELECT id FROM prompt_sets WHERE name = 'bench'), "
    "jsonb_build_array(jsonb_build_object('role', 'user', 'content', "
    "'Question ' || g || ': ' || repeat('how would you explain this? ', 4))), "
    "md5(g::text), 'imported', '[]'::jsonb, false, false, now() FROM generate_series(1, :prompts) g",
    "INSERT INTO responses (prompt_id, source, text, generation_params, token_count, created_at) "
    "SELECT p.id, 'bench', 'Answer ' || g || ' to prompt ' || p.id || '. ' "
    "|| repeat('Here is a helpful sentence. ', 6), '{}'::jsonb, 60, now() "
    "FROM generate_series(1, :responses) g JOIN prompts p ON p.id = (SELECT min(id) FROM prompts) + (g - 1) % :prompts",
    "INSERT INTO pairs (prompt_id, response_a_id, response_b_id, judgements_needed, judgement_count, status, "
    "cross_version, created_at) "
    "SELECT a.prompt_id, a.id, a.id + 1, 2, 2, 'complete', false, now() FROM responses a "
    "WHERE (a.id - (SELECT min(id) FROM responses)) % 2 = 0 AND a.id + 1 <= (SELECT max(id) FROM responses)",
    "INSERT INTO judgements (pair_id, annotator_id, choice, strength, seconds, note, created_at) "
    "SELECT p.id, u.id, (ARRAY['a', 'b', 'a', 'b', 'tie', 'both_bad'])[1 + (p.id * 7 + k) % 6], 2, 5 + (p.id % 20), "
    "'', now() "
    "FROM pairs p CROSS JOIN generate_series(0, 1) k "
    "JOIN users u ON u.username = 'bench' || (1 + (p.id + k * 17) % :annotators)",
]


def _psycopg(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def create_database() -> tuple[str, str]:
    name = f"rlhf_bench_export_{uuid.uuid4().hex[:8]}"
    admin = create_engine(_psycopg(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name, _psycopg(PG_URL).rsplit("/", 1)[0] + "/" + name


def drop_database(name: str) -> None:
    """Best effort: a failure here (PostgreSQL restarting) is reported, not raised over the real error."""
    admin = create_engine(_psycopg(PG_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    except Exception as exc:
        print(f"could not drop the scratch database {name}: {str(exc).splitlines()[0]}", file=sys.stderr)
    finally:
        admin.dispose()


def generate(url: str, judgements: int) -> float:
    """Migrate and fill the database; returns the seconds it took."""
    from app import migrate
    from app.db import make_engine

    started = time.perf_counter()
    engine = make_engine(url)
    migrate.upgrade(engine)
    pairs = judgements // 2
    sizes = {"annotators": ANNOTATORS, "prompts": max(pairs // 5, 1), "responses": pairs * 2}
    with engine.begin() as conn:
        for statement in GENERATE:
            conn.execute(text(statement), {k: v for k, v in sizes.items() if f":{k}" in statement})
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return time.perf_counter() - started


def export_child(url: str, params: dict, out: str) -> None:
    """Runs in a fresh process: export, then print one JSON line with time and peak RSS."""
    import resource

    from app.db import make_engine, make_sessionmaker
    from app.export.filters import parse_params
    from app.export.service import export_to_folder

    engine = make_engine(url)
    started, cpu_started = time.perf_counter(), time.process_time()
    with make_sessionmaker(engine)() as db:
        result = export_to_folder(db, parse_params(params), Path(out))
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    counts = result["snapshot"]["counts"]
    read = counts["judgements"] + counts["dropped_ties"] + counts["dropped_both_bad"] + counts["dropped_agreement"]
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "peak_rss_mb": peak_mb,
                "rows": counts["rows"],
                "judgements": read,
                "bytes": result["bytes"],
            }
        )
    )


def run_export(url: str, params: dict, out: Path) -> dict:
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); from bench.export import export_child; "
        "export_child(sys.argv[2], json.loads(sys.argv[3]), sys.argv[4])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(ROOT), url, json.dumps(params), str(out)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--judgements", type=int, default=1_000_000)
    parser.add_argument("--format", default="trl", choices=["trl", "trl_conversational", "hh", "csv", "parquet"])
    parser.add_argument("--aggregation", default="every", choices=["every", "majority"])
    parser.add_argument("--out", default="/tmp/rlhf-bench-export", help="folder for the exported file (deleted after)")
    args = parser.parse_args()
    name, url = create_database()
    try:
        print(f"generating {args.judgements:,} judgements in PostgreSQL ({name}) …", flush=True)
        print(f"  generated in {generate(url, args.judgements):.1f} s", flush=True)
        params = {"format": args.format, "aggregation": args.aggregation, "ties": "keep", "both_bad": "keep"}
        figures = run_export(url, params, Path(args.out))
    finally:
        drop_database(name)
        for file in Path(args.out).glob("*"):
            file.unlink()
    rate = figures["judgements"] / figures["seconds"]
    print(
        f"exported {figures['judgements']:,} judgements as {figures['rows']:,} {args.format} rows "
        f"({figures['bytes'] / 1e6:.0f} MB) in {figures['seconds']:.1f} s: {rate:,.0f} judgements/s"
    )
    cpu_rate = figures["judgements"] / figures["cpu_seconds"]
    print(
        f"  the export process used {figures['cpu_seconds']:.1f} s of CPU: {cpu_rate:,.0f} judgements per CPU-second "
        "(the wall-clock rate also waits on PostgreSQL and on other load)"
    )
    print(f"peak RSS of the export process: {figures['peak_rss_mb']:.0f} MB (limit {LIMIT_MB} MB)")
    summary = {
        "bench": "export",
        "format": args.format,
        "aggregation": args.aggregation,
        "judgements": figures["judgements"],
        "rows": figures["rows"],
        "seconds": round(figures["seconds"], 2),
        "judgements_per_s": round(rate),
        "rows_per_s": round(figures["rows"] / figures["seconds"]),
        "judgements_per_cpu_s": round(cpu_rate),
        "peak_rss_mb": round(figures["peak_rss_mb"], 1),
        "under_limit": figures["peak_rss_mb"] < LIMIT_MB,
    }
    print(json.dumps(summary))
    return 0 if summary["under_limit"] else 1


if __name__ == "__main__":
    sys.exit(main())
