"""gold pairs and chat turns: pair statuses for pairs with a known answer (with the answer and how the pair
was made) and for a chat turn that only its author judges

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 22:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = sa.Enum('pending', 'complete', 'retired', name='pair_status', native_enum=False, create_constraint=True)
NEW = sa.Enum(
    'pending', 'complete', 'retired', 'gold', 'chat', name='pair_status', native_enum=False, create_constraint=True
)


def upgrade() -> None:
    with op.batch_alter_table('pairs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('gold_answer', sa.String(length=1), nullable=True))
        batch_op.add_column(sa.Column('gold_kind', sa.String(length=20), nullable=True))
        batch_op.alter_column('status', existing_type=OLD, type_=NEW, existing_nullable=False)


def downgrade() -> None:
    op.execute("DELETE FROM pairs WHERE status = 'gold'")
    op.execute("UPDATE pairs SET status = 'pending' WHERE status = 'chat'")
    with op.batch_alter_table('pairs', schema=None) as batch_op:
        batch_op.alter_column('status', existing_type=NEW, type_=OLD, existing_nullable=False)
        batch_op.drop_column('gold_kind')
        batch_op.drop_column('gold_answer')
