"""The ``rlhf`` command: serve, worker, migrate, create-user, import-prompts.

Run ``rlhf --help``; each sub-command says what it does.
"""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import subprocess
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from app.config import InsecureSettings, Settings


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
    from app import migrate
    from app.db import make_sessionmaker
    from app.users.service import ensure_first_admin

    engine = _engine(settings)
    migrate.upgrade(engine, "head")
    with make_sessionmaker(engine)() as db:
        password = ensure_first_admin(db, password=settings.admin_password)
    engine.dispose()
    if password:
        shown = "(from RLHF_ADMIN_PASSWORD)" if settings.admin_password else password
        print("=" * 64, flush=True)
        print(f"  First start: created the admin account.\n  username: admin\n  password: {shown}", flush=True)
        print("  This password is shown once; change it or create your own admin.", flush=True)
        print("=" * 64, flush=True)


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


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    settings = _settings()
    _bootstrap_database(settings)
    worker = None if args.no_worker else _start_worker_process()
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
        )
    finally:
        if worker is not None:
            _stop_worker_process(worker)


def cmd_worker(args: argparse.Namespace) -> None:
    from app.jobs.worker import run_worker

    run_worker(_settings(), once=args.once)


def cmd_create_user(args: argparse.Namespace) -> None:
    from app.db import make_sessionmaker
    from app.errors import DomainError
    from app.users.service import create_user

    settings = _settings()
    password = args.password
    generated = False
    if password is None and sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.username} (empty: generate one): ")
    if not password:
        import secrets

        password, generated = secrets.token_urlsafe(12), True
    engine = _engine(settings)
    try:
        with make_sessionmaker(engine)() as db:
            user = create_user(db, username=args.username, password=password, role=args.role)
    except DomainError as exc:
        raise CliError(exc.message) from None
    finally:
        engine.dispose()
    print(f"created {user.role.value} {user.username!r}" + (f" with password: {password}" if generated else ""))


def cmd_import_prompts(args: argparse.Namespace) -> None:
    """All or nothing: bad lines go to stderr with exit status 2 and nothing is written."""
    from pathlib import Path

    from app.db import make_sessionmaker
    from app.errors import DomainError, NotFound
    from app.prompts.importing import ImportRejected, import_path

    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{args.file}: no such file")
    settings = _settings()
    engine = _engine(settings)
    try:
        with make_sessionmaker(engine)() as db:
            prompt_set, report = import_path(db, path=path, set_name=args.set, create=args.create, fmt=args.format)
    except ImportRejected as exc:
        for error in exc.errors:
            print(f"{args.file}: {error}", file=sys.stderr)
        raise CliError(f"{exc.total} bad line(s) in {args.file}; nothing imported") from None
    except NotFound as exc:
        raise CliError(f"{exc.message}; pass --create to make it") from None
    except DomainError as exc:
        raise CliError(exc.message) from None
    finally:
        engine.dispose()
    print(f"{report} into prompt set {prompt_set.name!r}")


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
    worker.set_defaults(func=cmd_worker)

    mig = sub.add_parser("migrate", help="upgrade the database schema to the latest revision")
    mig.add_argument("--downgrade", metavar="REVISION", help="downgrade to REVISION instead (e.g. base)")
    mig.set_defaults(func=cmd_migrate)

    create = sub.add_parser("create-user", help="create an account")
    create.add_argument("username")
    create.add_argument("--role", default="annotator", choices=["annotator", "researcher", "admin"])
    create.add_argument("--password", help="default: asked for, or generated and printed")
    create.set_defaults(func=cmd_create_user)

    imp = sub.add_parser("import-prompts", help="import a JSONL or CSV file of prompts into a prompt set (all or nothing)")
    imp.add_argument("file", help='JSONL ({"prompt": …} or {"messages": […]} per line) or CSV with a "prompt" column')
    imp.add_argument("--set", required=True, metavar="NAME", help="the prompt set to import into")
    imp.add_argument("--create", action="store_true", help="create the set if it does not exist")
    imp.add_argument("--format", choices=["jsonl", "csv"], help="default: from the file name")
    imp.set_defaults(func=cmd_import_prompts)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
