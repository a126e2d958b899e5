"""annotation assignments

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 20:45:06.268477
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db
import app.db_types

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('pair_assignments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pair_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('swapped', sa.Boolean(), nullable=False),
    sa.Column('status', sa.Enum('active', 'skipped', 'submitted', name='assignment_status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('assigned_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('leased_until', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['pair_id'], ['pairs.id'], name=op.f('fk_pair_assignments_pair_id_pairs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_pair_assignments_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pair_assignments')),
    sa.UniqueConstraint('pair_id', 'user_id', name='uq_pair_assignments_pair_user')
    )
    with op.batch_alter_table('pair_assignments', schema=None) as batch_op:
        batch_op.create_index('ix_pair_assignments_pair_status_until', ['pair_id', 'status', 'leased_until'], unique=False)
        batch_op.create_index('ix_pair_assignments_user_status', ['user_id', 'status'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('pair_assignments', schema=None) as batch_op:
        batch_op.drop_index('ix_pair_assignments_user_status')
        batch_op.drop_index('ix_pair_assignments_pair_status_until')

    op.drop_table('pair_assignments')
