"""export and deletion (issue 16): deleted devices, deletion records, pending deletions

devices.deleted_time: set when the owner deletes a (disabled) device; from then on every
reader passes it by, and its data is removed in bounded batches before the row goes. A
partial index (user_id) WHERE deleted_time IS NOT NULL finds a person's deleted devices still
waiting (few) without touching the list's indexes. An ADD COLUMN on SQLite (a rebuild of
devices would drop it under the foreign keys of tokens, events, metrics and grants).
deletion_records: the anonymous audit record that a deletion (of a device or of an account)
happened: when, when it finished, and how many devices, metrics, samples and other rows went.
No ids of what was deleted, no email, no address.
pending_deletions: the work left of a deletion (kind, the subject's id, its record), deleted
with the subject's last row by the request or by `flask --app app maintenance`.

Revision ID: f5a6b7c8d9e0
Revises: e4f5a6b7c8d9
Create Date: 2026-11-26 04:30:00.000000

"""
from alembic import op
import sqlalchemy as sa

import bioweb.models


revision = "f5a6b7c8d9e0"
down_revision = "e4f5a6b7c8d9"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deleted_time', bioweb.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(
            'ix_devices_user_deleted',
            ['user_id'],
            unique=False,
            sqlite_where=sa.text('deleted_time IS NOT NULL'),
            postgresql_where=sa.text('deleted_time IS NOT NULL'),
        )

    op.create_table(
        'deletion_records',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('requested_time', bioweb.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('finished_time', bioweb.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('devices', sa.Integer(), server_default='0', nullable=False),
        sa.Column('metrics', sa.Integer(), server_default='0', nullable=False),
        sa.Column('samples', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('other_rows', sa.BigInteger(), server_default='0', nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_deletion_records')),
    )
    op.create_table(
        'pending_deletions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('record_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('subject_id', sa.Integer(), nullable=False),
        sa.Column('created_time', bioweb.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['record_id'], ['deletion_records.id'], name=op.f('fk_pending_deletions_record_id_deletion_records')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_pending_deletions')),
    )
    with op.batch_alter_table('pending_deletions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pending_deletions_record_id'), ['record_id'], unique=False)


def downgrade():
    with op.batch_alter_table('pending_deletions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pending_deletions_record_id'))
    op.drop_table('pending_deletions')
    op.drop_table('deletion_records')

    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_index('ix_devices_user_deleted', sqlite_where=sa.text('deleted_time IS NOT NULL'), postgresql_where=sa.text('deleted_time IS NOT NULL'))
        batch_op.drop_column('deleted_time')
