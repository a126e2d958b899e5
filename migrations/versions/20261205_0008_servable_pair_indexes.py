"""servable pair indexes: partial indexes over pending pairs in each queue order, for the next-pair statement,
and a user's assignments by status in id order, for the held-lease look-up

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 21:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SERVABLE = sa.text("status = 'pending'")


def upgrade() -> None:
    with op.batch_alter_table('pairs', schema=None) as batch_op:
        batch_op.create_index(
            'ix_pairs_servable_id', ['id'], unique=False, postgresql_where=SERVABLE, sqlite_where=SERVABLE
        )
        batch_op.create_index(
            'ix_pairs_servable_priority', ['status', sa.text('priority DESC'), 'id'], unique=False,
            postgresql_where=SERVABLE, sqlite_where=SERVABLE,
        )
    with op.batch_alter_table('pair_assignments', schema=None) as batch_op:
        batch_op.drop_index('ix_pair_assignments_user_status')
        batch_op.create_index('ix_pair_assignments_user_status_id', ['user_id', 'status', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('pair_assignments', schema=None) as batch_op:
        batch_op.drop_index('ix_pair_assignments_user_status_id')
        batch_op.create_index('ix_pair_assignments_user_status', ['user_id', 'status'], unique=False)
    with op.batch_alter_table('pairs', schema=None) as batch_op:
        batch_op.drop_index('ix_pairs_servable_priority')
        batch_op.drop_index('ix_pairs_servable_id')
