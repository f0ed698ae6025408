"""email confirmation, password reset and account events (issue 16)

users.email_confirmed_time: when the address was proven by a mailed link (NULL until then).
Every account made before this revision counts as confirmed (its creation time): only the
sign-up page makes unconfirmed accounts from now on. An ADD COLUMN on SQLite (a rebuild of
users would drop it under the foreign keys of every table that points at it).
account_events: what happened to an account (sign-in, sign-out, password changed, reset
requested and used, email confirmed, export made, device and account deleted) with time,
client address, request id and browser, read newest first by (user_id, id).
Password reset and confirmation links are signed tokens bound to the account's state: nothing
of them is stored.

Revision ID: e4f5a6b7c8d9
Revises: d3e4f5a6b7c8
Create Date: 2026-11-26 04:30:00.000000

"""
from alembic import op
import sqlalchemy as sa

import bioweb.models


revision = "e4f5a6b7c8d9"
down_revision = "d3e4f5a6b7c8"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email_confirmed_time', bioweb.models.UTCDateTime(timezone=True), nullable=True))
    op.execute("UPDATE users SET email_confirmed_time = created_time")

    op.create_table(
        'account_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('time', bioweb.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('ip', sa.String(length=45), nullable=True),
        sa.Column('request_id', sa.String(length=64), nullable=True),
        sa.Column('user_agent', sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_account_events_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_account_events')),
    )
    with op.batch_alter_table('account_events', schema=None) as batch_op:
        batch_op.create_index('ix_account_events_user_id_id', ['user_id', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('account_events', schema=None) as batch_op:
        batch_op.drop_index('ix_account_events_user_id_id')
    op.drop_table('account_events')

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('email_confirmed_time')
