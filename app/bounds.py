"""The numbers a request may carry, shared by every request model: JSON bodies, job parameters, export filters.

Each is bounded to what both databases store, so a value PostgreSQL would refuse (an id past its 4-byte
``INTEGER``) or SQLite would keep differently (``Infinity`` and NaN, written as non-standard JSON) is a 422
naming the field on both backends when the request arrives: not a job that fails when it runs, nor a download
that drops its connection after the 200. They are strict, because in JSON ``true`` is not 1 and ``"5"`` is not
5: a value of the wrong type is a mistake to report, not to guess at. Forms and query strings, whose values are
all text, are converted first (``dashboard.forms.parse_form``) or validated with ``strict=False``
(``export.filters.params_from_strings``).

A bounded type carries its own bounds (``Id``, ``Seed``): pydantic lets a type's bounds win over a field's, so
those are used without ``ge``/``le`` of their own. ``Int`` and ``Float`` carry none: each field that uses one
states its ``ge`` and ``le`` (``tests/system/test_request_bounds.py`` checks that every integer has them).
Imports nothing but pydantic, so any module can use it without an import cycle.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, Strict

MAX_INT = 2**31 - 1  # PostgreSQL's INTEGER, the type of every id and count column here (SQLite's holds 2**63 - 1)
MAX_ID = MAX_INT
MAX_SEED = 2**31 - 1  # what torch, numpy and random all take, and a job's JSON keeps exactly on both backends
MAX_IDS = 1000  # ids per list parameter (prompt sets, annotators, prompts)

Int = Annotated[int, Strict()]  # a whole number; the field gives its ge and le
Float = Annotated[float, Strict(), Field(allow_inf_nan=False)]  # finite: JSON has no Infinity or NaN
Bool = Annotated[bool, Strict()]  # true or false, not 1 or "yes"
Id = Annotated[int, Strict(), Field(ge=1, le=MAX_ID)]  # a row's id: what an INTEGER primary key holds
Seed = Annotated[int, Strict(), Field(ge=0, le=MAX_SEED)]
IdList = Annotated[list[Id], Field(max_length=MAX_IDS)]
