"""Imported by the worker's fork server before it forks any job process: the warm start.

Everything a job process needs on every run — the ORM models with their mappers configured and
the database drivers — is loaded here once, so a job starts in milliseconds. Nothing here may
start threads, open connections or import torch: job processes must begin clean.
"""

from __future__ import annotations

import contextlib
import importlib

from sqlalchemy.orm import configure_mappers

import app.all_models  # noqa: F401 - every table, so foreign keys resolve in any job

configure_mappers()
for _driver in ("sqlalchemy.dialects.sqlite.pysqlite", "sqlalchemy.dialects.postgresql.psycopg", "psycopg"):
    with contextlib.suppress(ImportError):
        importlib.import_module(_driver)
