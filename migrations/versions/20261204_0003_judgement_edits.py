"""judgement edits: the history of an annotator changing their own verdict

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 19:09:58.434239
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db
import app.db_types

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('judgement_edits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('judgement_id', sa.Integer(), nullable=False),
    sa.Column('editor_id', sa.Integer(), nullable=True),
    sa.Column('old_choice', sa.Enum('a', 'b', 'tie', 'both_bad', name='edit_old_choice', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('old_strength', sa.Integer(), nullable=True),
    sa.Column('new_choice', sa.Enum('a', 'b', 'tie', 'both_bad', name='edit_new_choice', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('new_strength', sa.Integer(), nullable=True),
    sa.Column('edited_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['editor_id'], ['users.id'], name=op.f('fk_judgement_edits_editor_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['judgement_id'], ['judgements.id'], name=op.f('fk_judgement_edits_judgement_id_judgements'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_judgement_edits'))
    )
    with op.batch_alter_table('judgement_edits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_judgement_edits_judgement_id'), ['judgement_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('judgement_edits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_judgement_edits_judgement_id'))

    op.drop_table('judgement_edits')
