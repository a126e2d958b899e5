"""Domain errors raised by services, jobs and validation: plain exceptions with an HTTP-shaped status.

This module imports neither FastAPI nor SQLAlchemy, so a trainer, a generation backend or a job can
raise and catch them without loading the web stack; :mod:`app.http_errors` maps them to answers.
"""

from __future__ import annotations


class DomainError(Exception):
    status_code = 400
    title = "Bad request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Invalid(DomainError):
    status_code = 422
    title = "Invalid input"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", field=field)


class NotFound(DomainError):
    status_code = 404
    title = "Not found"


class Conflict(DomainError):
    status_code = 409
    title = "Conflict"


class Forbidden(DomainError):
    status_code = 403
    title = "Forbidden"


class Unauthenticated(DomainError):
    status_code = 401
    title = "Not authenticated"


class TooManyRequests(DomainError):
    status_code = 429
    title = "Too many requests"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
