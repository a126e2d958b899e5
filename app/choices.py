"""Reading a choice a person typed (a set's status, a user's role) as its enum member.

Pure Python, like :mod:`app.errors`: services and validation modules of any package use it.
"""

from __future__ import annotations

import enum
from typing import TypeVar

from app.errors import Invalid

E = TypeVar("E", bound=enum.StrEnum)


def parse_choice(choices: type[E], value: object, field: str) -> E:
    """``value`` as a member of ``choices``, or ``Invalid`` naming ``field`` and listing every choice."""
    try:
        return choices(value)
    except ValueError:
        listed = ", ".join(choice.value for choice in choices)
        raise Invalid(field, f"unknown {field} {str(value)[:40]!r}; use one of: {listed}") from None
