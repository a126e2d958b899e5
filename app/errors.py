"""Domain errors raised by services, jobs and validation: plain exceptions with an HTTP-shaped status.

This module imports neither FastAPI nor SQLAlchemy, so a trainer, a generation backend or a job can
raise and catch them without loading the web stack; :mod:`app.http_errors` maps them to answers.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal the asker can act on; its class says which HTTP answer it becomes.

    A subclass names its answer in its class line, ``class Gone(DomainError, status_code=410, title="Gone")``,
    so that the status and the problem title of every error read as one table.
    """

    status_code = 400
    title = "Bad request"

    def __init_subclass__(cls, *, status_code: int | None = None, title: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if status_code is not None:
            cls.status_code = status_code
        if title is not None:
            cls.title = title

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Invalid(DomainError, status_code=422, title="Invalid input"):
    """A value the asker gave is wrong; ``field`` names it, so a form can show the message beside it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", field=field)


class NotFound(DomainError, status_code=404, title="Not found"):
    """The thing asked for does not exist (or is not the asker's to see)."""


class Conflict(DomainError, status_code=409, title="Conflict"):
    """The request is well-formed but clashes with what is stored (a duplicate, a state that moved on)."""


class Forbidden(DomainError, status_code=403, title="Forbidden"):
    """The asker is known but may not do this."""


class Unauthenticated(DomainError, status_code=401, title="Not authenticated"):
    """Nobody is logged in, or the credentials sent are no longer valid."""


class TooManyRequests(DomainError, status_code=429, title="Too many requests"):
    """Throttled; ``retry_after`` (seconds) goes out as the Retry-After header."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
