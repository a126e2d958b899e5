"""Who may do what to a job: the one place these rules live.

Listing, reading and creating jobs is decided by the route's role (researchers and admins);
cancelling is per job, because it throws away someone's run.
"""

from __future__ import annotations

from app.auth.models import Role, User
from app.jobs.models import Job


def can_cancel(actor: User, job: Job) -> bool:
    """Its creator or an admin may cancel a job."""
    return actor.role is Role.admin or (job.created_by_id is not None and job.created_by_id == actor.id)
