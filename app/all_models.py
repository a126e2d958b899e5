"""Imports every domain model so that ``Base.metadata`` is complete (alembic, tests)."""

from app.annotation import models as annotation_models  # noqa: F401
from app.auth import models as auth_models  # noqa: F401
from app.db import Base
from app.jobs import models as job_models  # noqa: F401
from app.pool import models as pool_models  # noqa: F401
from app.prompts import models as prompt_models  # noqa: F401
from app.registry import models as registry_models  # noqa: F401

metadata = Base.metadata
