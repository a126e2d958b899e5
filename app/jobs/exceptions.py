"""What a running handler may raise, or be raised at, to end its attempt in a particular way.

They live apart from the reporter so that the state machine (``lifecycle``) and the reporter can
both raise them without importing each other.
"""

from __future__ import annotations


class JobCancelled(Exception):
    """The job was cancelled: the handler should stop at once and write nothing more.

    Raised by the reporter at the handler's next step; a handler may simply let it propagate.
    The attempt then ends ``cancelled`` and is not retried."""


class JobLost(Exception):
    """This attempt no longer owns the job (its lease expired and another worker took it over).

    Nothing this attempt writes would be kept, so it stops; the job itself carries on elsewhere."""


class JobFailed(Exception):
    """A failure that a retry cannot fix (bad input data, a missing model): fail now, no retry.

    A ``DomainError`` (``Invalid``, ``NotFound``, …) or a ``ValueError`` (a config's own checks, a file
    that does not parse) is taken the same way: the same parameters and data would fail again. Any other
    exception is treated as a crash and retried until the job's ``max_attempts``."""
