"""The ``rlhf`` command: serve, worker, migrate, create-user, import-prompts, models.

Run ``rlhf --help``; each sub-command says what it does.
"""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from app.config import InsecureSettings, Settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class CliError(SystemExit):
    """A user mistake: printed as one line on stderr, exit status 2."""

    def __init__(self, message: str) -> None:
        print(f"rlhf: error: {message}", file=sys.stderr)
        super().__init__(2)


def _settings() -> Settings:
    try:
        settings = Settings()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings.ensure_secret_key()
    except (ValidationError, InsecureSettings) as exc:
        raise CliError(str(exc).replace("\n", " ")) from None
    return settings


def _engine(settings: Settings):  # noqa: ANN202
    from app.db import make_engine

    return make_engine(settings.resolved_database_url)


@contextmanager
def _session(settings: Settings, *, migrate_first: bool = False) -> Iterator[Session]:
    """A session on an engine of its own, disposed on the way out: a command is one unit of work.

    A domain error (bad input the services refuse) becomes a one-line ``CliError``, not a traceback.
    ``migrate_first`` upgrades the database to head before the session opens."""
    import app.all_models  # noqa: F401 - every mapper, so relationships named across packages resolve
    from app.db import make_sessionmaker
    from app.errors import DomainError

    engine = _engine(settings)
    try:
        if migrate_first:
            from app import migrate  # alembic loads only for the commands that migrate

            migrate.upgrade(engine, "head")
        with make_sessionmaker(engine)() as db:
            yield db
    except DomainError as exc:
        raise CliError(exc.message) from None
    finally:
        engine.dispose()


def _input_file(name: str) -> Path:
    """The file an import command reads, refused up front when it is not there."""
    path = Path(name)
    if not path.is_file():
        raise CliError(f"{name}: no such file")
    return path


@contextmanager
def _all_or_nothing(name: str) -> Iterator[None]:
    """Turn an import rejected for bad lines into those lines on stderr and exit status 2."""
    from app.prompts.importing import ImportRejected

    try:
        yield
    except ImportRejected as exc:
        for error in exc.errors:
            print(f"{name}: {error}", file=sys.stderr)
        raise CliError(f"{exc.total} bad line(s) in {name}; nothing imported") from None


def cmd_migrate(args: argparse.Namespace) -> None:
    from app import migrate

    settings = _settings()
    engine = _engine(settings)
    if args.downgrade:
        migrate.downgrade(engine, args.downgrade)
        print(f"database downgraded to {args.downgrade}")
    else:
        migrate.upgrade(engine, "head")
        print(f"database at revision {migrate.current_head()}")
    engine.dispose()


def _bootstrap_database(settings: Settings) -> None:
    """Migrate, then on an empty database create the first admin and print its password once."""
    from app.users.service import ensure_first_admin

    with _session(settings, migrate_first=True) as db:
        password = ensure_first_admin(db, password=settings.admin_password)
    if password:
        shown = "(from RLHF_ADMIN_PASSWORD)" if settings.admin_password else password
        print("=" * 64, flush=True)
        print(f"  First start: created the admin account.\n  username: admin\n  password: {shown}", flush=True)
        print("  This password is shown once; change it or create your own admin.", flush=True)
        print("=" * 64, flush=True)


def _queue_first_bootstrap(settings: Settings) -> None:
    """First start: have the worker install the default policy and starter prompts (no torch here)."""
    from app.versions.bootstrap import queue_first_bootstrap

    with _session(settings) as db:
        job = queue_first_bootstrap(db, settings)
    if job is not None:
        print(
            f"First start: the worker installs the default policy and starter prompts (job {job.id}); "
            "pairs appear on the Pool page when it is done.",
            flush=True,
        )


def _start_worker_process() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=os.environ.copy())


def _stop_worker_process(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def _exit_quietly(signum: int, _frame: object) -> None:
    raise SystemExit(0)


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    settings = _settings()
    _bootstrap_database(settings)
    _queue_first_bootstrap(settings)
    worker = None if args.no_worker else _start_worker_process()
    # uvicorn re-raises a SIGTERM after its graceful shutdown; with the default handler that would
    # end this process before the finally below stops the worker, leaving it orphaned.
    signal.signal(signal.SIGTERM, _exit_quietly)
    try:
        print(f"RLHF Loop on http://{args.host}:{args.port}/ (data in {settings.data_dir.resolve()})", flush=True)
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            proxy_headers=True,
            timeout_keep_alive=args.keep_alive,
            log_level=args.log_level,
            # A line per request only where the level shows it: below it uvicorn would still build each line's
            # arguments (client address, path) for a logger that drops them.
            access_log=args.log_level in ("info", "debug"),
        )
    finally:
        if worker is not None:
            _stop_worker_process(worker)


def cmd_worker(args: argparse.Namespace) -> None:
    from app.jobs.worker import run_worker
    from app.lanes import parse_lanes

    settings = _settings()
    try:
        lanes = parse_lanes(args.lanes) if args.lanes is not None else settings.lanes
    except ValueError as exc:
        raise CliError(f"--lanes: {exc}") from None
    run_worker(settings, once=args.once, lanes=lanes)


def cmd_create_user(args: argparse.Namespace) -> None:
    from app.users.service import create_user

    settings = _settings()
    password = args.password
    generated = False
    if password is None and sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.username} (empty: generate one): ")
    if not password:
        import secrets

        password, generated = secrets.token_urlsafe(12), True
    with _session(settings) as db:
        user = create_user(db, username=args.username, password=password, role=args.role)
    print(f"created {user.role.value} {user.username!r}" + (f" with password: {password}" if generated else ""))


def cmd_import_prompts(args: argparse.Namespace) -> None:
    """All or nothing: bad lines go to stderr with exit status 2 and nothing is written."""
    from app.errors import NotFound
    from app.prompts.importing import import_path

    path = _input_file(args.file)
    with _session(_settings()) as db, _all_or_nothing(args.file):
        try:
            prompt_set, report = import_path(db, path=path, set_name=args.set, create=args.create, fmt=args.format)
        except NotFound as exc:
            raise CliError(f"{exc.message}; pass --create to make it") from None
    print(f"{report} into prompt set {prompt_set.name!r}")


def cmd_models_bootstrap(args: argparse.Namespace) -> None:
    """Synchronously what ``serve`` queues on a first start; a second run does nothing."""
    from app.training.core.default_models import MissingModelPackage
    from app.versions.bootstrap import bootstrap

    settings = _settings()
    try:
        with _session(settings, migrate_first=True) as db:
            report = bootstrap(db, settings, model=args.model, say=lambda line: print(line, flush=True))
    except MissingModelPackage as exc:
        raise CliError(str(exc)) from None
    print(report)


def cmd_models_list(args: argparse.Namespace) -> None:
    from app.registry.models import ModelKind
    from app.registry.service import list_versions

    with _session(_settings()) as db:
        versions = list_versions(db, kind=ModelKind(args.kind) if args.kind else None)
    rows = [("id", "name", "kind", "status", "backend", "base model", "created")]
    for v in versions:
        backend = str(v.config.get("backend", "transformers")) if v.kind is ModelKind.policy else ""
        rows.append(
            (
                str(v.id),
                v.name,
                v.kind.value,
                v.status.value,
                backend,
                v.base_model,
                v.created_at.strftime("%Y-%m-%d %H:%M"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def cmd_models_serve(args: argparse.Namespace) -> None:
    """Point a policy at an OpenAI-compatible server (or, with --in-process, back at the app's own process)."""
    from sqlalchemy import select

    from app.registry.models import ModelKind, ModelVersion
    from app.registry.serving import ServerSpec, serve_from, serve_in_process

    with _session(_settings()) as db:
        version = db.scalar(select(ModelVersion).where(ModelVersion.name == args.version))
        if version is None or version.kind is not ModelKind.policy:
            raise CliError(f"version: no policy named {args.version!r}")
        if args.in_process:
            serve_in_process(db, version.id)
        else:
            if not args.base_url:
                raise CliError("--base-url: required (or --in-process)")
            spec = ServerSpec(base_url=args.base_url, load=args.load, model=args.model, api_key_env=args.api_key_env)
            serve_from(db, version.id, spec)
        config = dict(version.config)
        db.commit()
    where = "in process" if args.in_process else f"by {config['base_url']} as {config['model']!r} ({config['load']})"
    print(f"{args.version} is served {where}")


def cmd_models_push(args: argparse.Namespace) -> None:
    """Upload a version's folder (weights, tokenizer, model card) to a Hugging Face Hub model repository."""
    from sqlalchemy import select

    from app.errors import Invalid
    from app.registry.models import ModelVersion
    from app.versions.hub import push_folder

    with _session(_settings()) as db:
        version = db.scalar(select(ModelVersion).where(ModelVersion.name == args.version))
        if version is None or not version.path:
            raise CliError(f"version: no version named {args.version!r} with a folder")
        token = os.environ.get(args.token_env) if args.token_env else None
        if args.token_env and not token:
            raise CliError(f"--token-env: environment variable {args.token_env!r} is not set")
        try:
            url = push_folder(
                Path(version.path), args.repo, private=args.private, token=token, message=f"RLHF Loop: {version.name}"
            )
        except Invalid as exc:
            raise CliError(exc.message) from None
    print(f"{args.version} is at {url}")


def _add_models_commands(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="the model registry: install the first policy, list versions")
    msub = models.add_subparsers(dest="models_command", required=True)
    boot = msub.add_parser(
        "bootstrap", help="install and promote the default policy (policy-v0) and a starter prompt set, once"
    )
    boot.add_argument(
        "--model",
        metavar="ID_OR_FOLDER",
        help="a Hugging Face id or local folder instead of SmolLM2-135M-Instruct (default: RLHF_BOOTSTRAP_MODEL)",
    )
    boot.set_defaults(func=cmd_models_bootstrap)
    lst = msub.add_parser("list", help="list model versions, newest first")
    lst.add_argument("--kind", choices=["policy", "reward", "classifier"])
    lst.set_defaults(func=cmd_models_list)
    serve = msub.add_parser("serve", help="serve a policy from an OpenAI-compatible server (vLLM, transformers serve)")
    serve.add_argument("version", help="the policy version's name")
    serve.add_argument("--base-url", help="the server's OpenAI API root, e.g. http://gpu-box:8000/v1")
    serve.add_argument(
        "--load",
        choices=["fixed", "by_path", "lora"],
        default="fixed",
        help="how the server takes later versions: by_path (loads a model named by its folder), lora (vLLM runtime "
        "LoRA loading), fixed (one model; later versions are served in process)",
    )
    serve.add_argument("--model", help="the model name the server serves (default: the folder, with by_path)")
    serve.add_argument("--api-key-env", help="the environment variable that holds the server's API key")
    serve.add_argument("--in-process", action="store_true", help="serve it in the app's own process again")
    serve.set_defaults(func=cmd_models_serve)
    push = msub.add_parser("push", help="upload a version's folder to a Hugging Face Hub model repository")
    push.add_argument("version", help="the version's name")
    push.add_argument("--repo", required=True, help="the Hub repository, owner/name (created when missing)")
    push.add_argument("--private", action="store_true", help="create the repository private")
    push.add_argument(
        "--token-env", help="the environment variable holding a Hub write token (default: huggingface_hub's login)"
    )
    push.set_defaults(func=cmd_models_push)


def cmd_export(args: argparse.Namespace) -> None:
    """Write an export file (and its snapshot) from the command line; same filters as the page."""
    from app.export.filters import FORM_FIELDS, NAME_FIELDS, params_from_strings
    from app.export.service import export_to_folder

    raw = {name: str(getattr(args, name)) for name in (*FORM_FIELDS, *NAME_FIELDS) if getattr(args, name) is not None}
    out = Path(args.out)
    with _session(_settings()) as db:
        params = params_from_strings(raw)
        result = export_to_folder(db, params, out.parent if str(out.parent) else Path("."), name=out.name)
    counts = result["snapshot"]["counts"]
    print(
        f"wrote {counts['rows']:,} rows to {out} ({result['bytes']:,} bytes); "
        f"snapshot sha256 {result['snapshot']['sha256']}"
    )


def cmd_import(args: argparse.Namespace) -> None:
    """Import a preference dataset (TRL or HH-RLHF JSONL, optionally gzipped); all or nothing."""
    from app.importing.service import import_preferences

    path = _input_file(args.file)
    with _session(_settings()) as db, _all_or_nothing(args.file), path.open("rb") as stream:
        report = import_preferences(db, stream=stream, fmt=args.format, name=args.name, set_name=args.set)
    print(report)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlhf", description="RLHF Loop: human feedback in, better policy out.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate, then run the web app (and one worker unless --no-worker)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="uvicorn processes (the app is stateless)")
    serve.add_argument("--no-worker", action="store_true", help="do not start the embedded job worker")
    serve.add_argument("--keep-alive", type=int, default=30, help="seconds an idle keep-alive connection stays open")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="claim and run background jobs")
    worker.add_argument("--once", action="store_true", help="run at most one job, then exit")
    worker.add_argument(
        "--lanes",
        metavar="SPEC",
        help="job slots per lane, e.g. 'training:2' on a GPU machine or 'generation,short' beside it "
        "(lanes: generation, training, short; default: RLHF_WORKER_LANES, one slot each)",
    )
    worker.set_defaults(func=cmd_worker)

    mig = sub.add_parser("migrate", help="upgrade the database schema to the latest revision")
    mig.add_argument("--downgrade", metavar="REVISION", help="downgrade to REVISION instead (e.g. base)")
    mig.set_defaults(func=cmd_migrate)

    create = sub.add_parser("create-user", help="create an account")
    create.add_argument("username")
    create.add_argument("--role", default="annotator", choices=["annotator", "researcher", "admin"])
    create.add_argument("--password", help="default: asked for, or generated and printed")
    create.set_defaults(func=cmd_create_user)

    imp = sub.add_parser(
        "import-prompts", help="import a JSONL or CSV file of prompts into a prompt set (all or nothing)"
    )
    imp.add_argument("file", help='JSONL ({"prompt": …} or {"messages": […]} per line) or CSV with a "prompt" column')
    imp.add_argument("--set", required=True, metavar="NAME", help="the prompt set to import into")
    imp.add_argument("--create", action="store_true", help="create the set if it does not exist")
    imp.add_argument("--format", choices=["jsonl", "csv"], help="default: from the file name")
    imp.set_defaults(func=cmd_import_prompts)
    _add_models_commands(sub)
    exp = sub.add_parser(
        "export", help="export judgements, demonstrations or labels to a file (with a snapshot beside it)"
    )
    exp.add_argument(
        "--format", required=True, choices=["trl", "trl_conversational", "hh", "csv", "parquet", "hf", "sft", "labels"]
    )
    exp.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="the file to write; FILE.snapshot.json and FILE.ids.txt go beside it",
    )
    exp.add_argument("--prompt-set-id", type=int, dest="prompt_set_id")
    exp.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="judged on or after this UTC day")
    exp.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="judged on or before this UTC day")
    exp.add_argument(
        "--annotators", dest="include_annotators", metavar="NAMES", help="only these usernames (comma-separated)"
    )
    exp.add_argument("--exclude-annotators", dest="exclude_annotators", metavar="NAMES", help="never these usernames")
    exp.add_argument(
        "--policy-version-id", type=int, dest="policy_version_id", help="only pairs with a response from this version"
    )
    exp.add_argument(
        "--min-agreement",
        type=float,
        dest="min_agreement",
        help="0-1: share of a pair's judgements agreeing with its majority",
    )
    exp.add_argument("--ties", choices=["drop", "keep"], help="table formats only (default drop)")
    exp.add_argument("--both-bad", choices=["drop", "keep"], dest="both_bad", help="table formats only (default drop)")
    exp.add_argument(
        "--aggregation", choices=["every", "majority"], help="every judgement (default) or each pair's majority"
    )
    exp.add_argument(
        "--include-quarantined",
        dest="include_quarantined",
        action="store_const",
        const="true",
        help="also the work of quarantined annotators (left out by default)",
    )
    exp.set_defaults(func=cmd_export)

    pref = sub.add_parser(
        "import", help="import a preference dataset (TRL or HH-RLHF JSONL, .gz too) as external judgements"
    )
    pref.add_argument("file")
    pref.add_argument("--format", required=True, choices=["trl", "hh"])
    pref.add_argument(
        "--name", required=True, help="source name: judgements come from the inactive account external:NAME"
    )
    pref.add_argument("--set", metavar="NAME", help="prompt set to import into (default: external:NAME)")
    pref.set_defaults(func=cmd_import)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
