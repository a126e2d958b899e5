"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-28 20:35:40.823590
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
import app.db
import app.db_types

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('login_failures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=200), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=False),
    sa.Column('at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_failures'))
    )
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.create_index('ix_login_failures_ip_at', ['ip', 'at'], unique=False)
        batch_op.create_index('ix_login_failures_username_at', ['username', 'at'], unique=False)

    op.create_table('periodic_leases',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('holder', sa.String(length=200), nullable=True),
    sa.Column('leased_until', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_run_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_periodic_leases'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.Enum('annotator', 'researcher', 'admin', name='user_role', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_user_id'), ['user_id'], unique=False)

    op.create_table('jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=50), nullable=False),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.Enum('queued', 'running', 'succeeded', 'failed', 'cancelled', name='job_status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('progress', sa.Float(), nullable=False),
    sa.Column('progress_message', sa.String(length=500), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('worker_id', sa.String(length=200), nullable=True),
    sa.Column('heartbeat_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('lease_seconds', sa.Integer(), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('result', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('log_tail', sa.Text(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_jobs_created_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobs_kind'), ['kind'], unique=False)
        batch_op.create_index('ix_jobs_status_id', ['status', 'id'], unique=False)

    op.create_table('prompt_sets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('status', sa.Enum('active', 'review', 'retired', name='prompt_set_status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('judgements_per_pair', sa.Integer(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_prompt_sets_created_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prompt_sets')),
    sa.UniqueConstraint('name', name=op.f('uq_prompt_sets_name'))
    )
    op.create_table('user_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_sessions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_sessions'))
    )
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_sessions_user_id'), ['user_id'], unique=False)

    op.create_table('job_metrics',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_metrics_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_metrics'))
    )
    with op.batch_alter_table('job_metrics', schema=None) as batch_op:
        batch_op.create_index('ix_job_metrics_job_name_step', ['job_id', 'name', 'step'], unique=False)

    op.create_table('model_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.Enum('policy', 'reward', 'classifier', name='model_kind', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('status', sa.Enum('training', 'ready', 'promoted', 'archived', name='model_status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('base_model', sa.String(length=500), nullable=False),
    sa.Column('path', sa.String(length=1000), nullable=False),
    sa.Column('metrics', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('config', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_by_job_id', sa.Integer(), nullable=True),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('promoted_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['created_by_job_id'], ['jobs.id'], name=op.f('fk_model_versions_created_by_job_id_jobs'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['parent_id'], ['model_versions.id'], name=op.f('fk_model_versions_parent_id_model_versions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_versions')),
    sa.UniqueConstraint('created_by_job_id', name=op.f('uq_model_versions_created_by_job_id')),
    sa.UniqueConstraint('name', name=op.f('uq_model_versions_name'))
    )
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.create_index('ix_model_versions_kind_status', ['kind', 'status'], unique=False)
        batch_op.create_index('uq_model_versions_one_promoted_policy', ['kind'], unique=True, postgresql_where=sa.text("status = 'promoted' AND kind = 'policy'"), sqlite_where=sa.text("status = 'promoted' AND kind = 'policy'"))

    op.create_table('prompts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('prompt_set_id', sa.Integer(), nullable=False),
    sa.Column('messages', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('source', sa.Enum('imported', 'written', 'self_instruct', 'chat', name='prompt_source', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('tags', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('red_team', sa.Boolean(), nullable=False),
    sa.Column('retired', sa.Boolean(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_prompts_created_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['prompt_set_id'], ['prompt_sets.id'], name=op.f('fk_prompts_prompt_set_id_prompt_sets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prompts')),
    sa.UniqueConstraint('prompt_set_id', 'content_hash', name='uq_prompts_set_content')
    )
    with op.batch_alter_table('prompts', schema=None) as batch_op:
        batch_op.create_index('ix_prompts_set_retired', ['prompt_set_id', 'retired'], unique=False)

    op.create_table('responses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('prompt_id', sa.Integer(), nullable=False),
    sa.Column('policy_version_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('generation_params', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('token_count', sa.Integer(), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['policy_version_id'], ['model_versions.id'], name=op.f('fk_responses_policy_version_id_model_versions'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['prompt_id'], ['prompts.id'], name=op.f('fk_responses_prompt_id_prompts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_responses'))
    )
    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_responses_policy_version_id'), ['policy_version_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_responses_prompt_id'), ['prompt_id'], unique=False)

    op.create_table('pairs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('prompt_id', sa.Integer(), nullable=False),
    sa.Column('response_a_id', sa.Integer(), nullable=False),
    sa.Column('response_b_id', sa.Integer(), nullable=False),
    sa.Column('judgements_needed', sa.Integer(), nullable=False),
    sa.Column('judgement_count', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'complete', 'retired', name='pair_status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('cross_version', sa.Boolean(), nullable=False),
    sa.Column('created_by_job_id', sa.Integer(), nullable=True),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('judgements_needed >= 1', name=op.f('ck_pairs_needs_positive')),
    sa.CheckConstraint('response_a_id <> response_b_id', name=op.f('ck_pairs_distinct_responses')),
    sa.ForeignKeyConstraint(['created_by_job_id'], ['jobs.id'], name=op.f('fk_pairs_created_by_job_id_jobs'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['prompt_id'], ['prompts.id'], name=op.f('fk_pairs_prompt_id_prompts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['response_a_id'], ['responses.id'], name=op.f('fk_pairs_response_a_id_responses'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['response_b_id'], ['responses.id'], name=op.f('fk_pairs_response_b_id_responses'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pairs'))
    )
    with op.batch_alter_table('pairs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pairs_created_by_job_id'), ['created_by_job_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_pairs_prompt_id'), ['prompt_id'], unique=False)
        batch_op.create_index('ix_pairs_status_id', ['status', 'id'], unique=False)

    op.create_table('judgements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pair_id', sa.Integer(), nullable=False),
    sa.Column('annotator_id', sa.Integer(), nullable=False),
    sa.Column('choice', sa.Enum('a', 'b', 'tie', 'both_bad', name='judgement_choice', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('strength', sa.Integer(), nullable=True),
    sa.Column('seconds', sa.Float(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('strength IS NULL OR (strength >= 1 AND strength <= 3)', name=op.f('ck_judgements_strength_range')),
    sa.ForeignKeyConstraint(['annotator_id'], ['users.id'], name=op.f('fk_judgements_annotator_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['pair_id'], ['pairs.id'], name=op.f('fk_judgements_pair_id_pairs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_judgements')),
    sa.UniqueConstraint('pair_id', 'annotator_id', name='uq_judgements_pair_annotator')
    )
    with op.batch_alter_table('judgements', schema=None) as batch_op:
        batch_op.create_index('ix_judgements_annotator_created', ['annotator_id', 'created_at'], unique=False)
        batch_op.create_index('ix_judgements_created_at', ['created_at'], unique=False)

    op.create_table('demonstrations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('prompt_id', sa.Integer(), nullable=False),
    sa.Column('annotator_id', sa.Integer(), nullable=True),
    sa.Column('judgement_id', sa.Integer(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('kind', sa.Enum('ideal', 'safe_answer', name='demonstration_kind', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['annotator_id'], ['users.id'], name=op.f('fk_demonstrations_annotator_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['judgement_id'], ['judgements.id'], name=op.f('fk_demonstrations_judgement_id_judgements'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['prompt_id'], ['prompts.id'], name=op.f('fk_demonstrations_prompt_id_prompts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_demonstrations'))
    )
    with op.batch_alter_table('demonstrations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_demonstrations_annotator_id'), ['annotator_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_demonstrations_judgement_id'), ['judgement_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_demonstrations_prompt_id'), ['prompt_id'], unique=False)

    op.create_table('response_labels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('response_id', sa.Integer(), nullable=False),
    sa.Column('annotator_id', sa.Integer(), nullable=False),
    sa.Column('judgement_id', sa.Integer(), nullable=True),
    sa.Column('quality', sa.Boolean(), nullable=False),
    sa.Column('safety', sa.Boolean(), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['annotator_id'], ['users.id'], name=op.f('fk_response_labels_annotator_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['judgement_id'], ['judgements.id'], name=op.f('fk_response_labels_judgement_id_judgements'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['response_id'], ['responses.id'], name=op.f('fk_response_labels_response_id_responses'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_response_labels')),
    sa.UniqueConstraint('response_id', 'annotator_id', name='uq_response_labels_response_annotator')
    )
    with op.batch_alter_table('response_labels', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_response_labels_annotator_id'), ['annotator_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_response_labels_judgement_id'), ['judgement_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('response_labels', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_response_labels_judgement_id'))
        batch_op.drop_index(batch_op.f('ix_response_labels_annotator_id'))

    op.drop_table('response_labels')
    with op.batch_alter_table('demonstrations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_demonstrations_prompt_id'))
        batch_op.drop_index(batch_op.f('ix_demonstrations_judgement_id'))
        batch_op.drop_index(batch_op.f('ix_demonstrations_annotator_id'))

    op.drop_table('demonstrations')
    with op.batch_alter_table('judgements', schema=None) as batch_op:
        batch_op.drop_index('ix_judgements_created_at')
        batch_op.drop_index('ix_judgements_annotator_created')

    op.drop_table('judgements')
    with op.batch_alter_table('pairs', schema=None) as batch_op:
        batch_op.drop_index('ix_pairs_status_id')
        batch_op.drop_index(batch_op.f('ix_pairs_prompt_id'))
        batch_op.drop_index(batch_op.f('ix_pairs_created_by_job_id'))

    op.drop_table('pairs')
    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_responses_prompt_id'))
        batch_op.drop_index(batch_op.f('ix_responses_policy_version_id'))

    op.drop_table('responses')
    with op.batch_alter_table('prompts', schema=None) as batch_op:
        batch_op.drop_index('ix_prompts_set_retired')

    op.drop_table('prompts')
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_index('uq_model_versions_one_promoted_policy', postgresql_where=sa.text("status = 'promoted' AND kind = 'policy'"), sqlite_where=sa.text("status = 'promoted' AND kind = 'policy'"))
        batch_op.drop_index('ix_model_versions_kind_status')

    op.drop_table('model_versions')
    with op.batch_alter_table('job_metrics', schema=None) as batch_op:
        batch_op.drop_index('ix_job_metrics_job_name_step')

    op.drop_table('job_metrics')
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_sessions_user_id'))

    op.drop_table('user_sessions')
    op.drop_table('prompt_sets')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_status_id')
        batch_op.drop_index(batch_op.f('ix_jobs_kind'))

    op.drop_table('jobs')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_user_id'))

    op.drop_table('api_tokens')
    op.drop_table('users')
    op.drop_table('periodic_leases')
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.drop_index('ix_login_failures_username_at')
        batch_op.drop_index('ix_login_failures_ip_at')

    op.drop_table('login_failures')
