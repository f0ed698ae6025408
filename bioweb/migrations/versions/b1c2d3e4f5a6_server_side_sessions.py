"""server-side sessions (issue 14): user_sessions, one row per signed-in browser

Sessions made before this revision lived in the cookie alone; their cookies name no row, so
everyone logs in once more after the upgrade.

Revision ID: b1c2d3e4f5a6
Revises: a4c2e8d91b36
Create Date: 2026-11-26 01:20:00.000000

"""
from alembic import op
import sqlalchemy as sa

import bioweb.models


# revision identifiers, used by Alembic.
revision = 'b1c2d3e4f5a6'
down_revision = 'a4c2e8d91b36'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'user_sessions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('key_digest', sa.String(length=64), nullable=False),
        sa.Column('user_agent', sa.String(length=200), nullable=False),
        sa.Column('ip', sa.String(length=45), nullable=True),
        sa.Column('created_time', bioweb.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('last_seen_time', bioweb.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_time', bioweb.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_sessions_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_user_sessions')),
    )
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_sessions_expires_time'), ['expires_time'], unique=False)
        batch_op.create_index('ix_user_sessions_user_id_id', ['user_id', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_user_sessions_user_id_id')
        batch_op.drop_index(batch_op.f('ix_user_sessions_expires_time'))

    op.drop_table('user_sessions')
