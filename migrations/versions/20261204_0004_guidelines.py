"""guidelines: per prompt set instructions and label wording, confirmed by annotators per version

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db
import app.db_types

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Added nullable, filled, then made NOT NULL: no server default is left behind for the models to match.
    with op.batch_alter_table('prompt_sets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('guidelines', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('label_definitions', app.db_types.JSONType, nullable=True))
        batch_op.add_column(sa.Column('guidelines_version', sa.Integer(), nullable=True))
    op.execute("UPDATE prompt_sets SET guidelines = '', guidelines_version = 0")
    with op.batch_alter_table('prompt_sets', schema=None) as batch_op:
        batch_op.alter_column('guidelines', existing_type=sa.Text(), nullable=False)
        batch_op.alter_column('guidelines_version', existing_type=sa.Integer(), nullable=False)
    op.create_table('guideline_confirmations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('prompt_set_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('confirmed_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['prompt_set_id'], ['prompt_sets.id'], name=op.f('fk_guideline_confirmations_prompt_set_id_prompt_sets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_guideline_confirmations_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_guideline_confirmations')),
    sa.UniqueConstraint('user_id', 'prompt_set_id', 'version', name='uq_guideline_confirmations')
    )
    with op.batch_alter_table('guideline_confirmations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_guideline_confirmations_prompt_set_id'), ['prompt_set_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('guideline_confirmations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_guideline_confirmations_prompt_set_id'))
    op.drop_table('guideline_confirmations')
    with op.batch_alter_table('prompt_sets', schema=None) as batch_op:
        batch_op.drop_column('guidelines_version')
        batch_op.drop_column('label_definitions')
        batch_op.drop_column('guidelines')
