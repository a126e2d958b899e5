"""pair priority: how unsure the newest reward model is about a pending pair, for the uncertain queue order

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 22:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('pairs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('priority', sa.Float(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('ranked_by_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_pairs_ranked_by_id_model_versions'), 'model_versions', ['ranked_by_id'], ['id'],
            ondelete='SET NULL',
        )
        batch_op.create_index('ix_pairs_status_priority', ['status', 'priority'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('pairs', schema=None) as batch_op:
        batch_op.drop_index('ix_pairs_status_priority')
        batch_op.drop_constraint(batch_op.f('fk_pairs_ranked_by_id_model_versions'), type_='foreignkey')
        batch_op.drop_column('ranked_by_id')
        batch_op.drop_column('priority')
