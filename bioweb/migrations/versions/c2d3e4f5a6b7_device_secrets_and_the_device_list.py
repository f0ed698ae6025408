"""device secrets and the device list (issue 14): two client secret slots, case-folded keys

devices:
- two client secret slots: slot 1 is the existing client_secret_digest ("" when emptied), with
  a serial (1 for every existing secret, so the tokens issued before keep working: their `cs`
  claim is 1), when it was added (NULL: before this revision) and when it expires; slot 2 the
  same, empty ("", serial 0).
- name_key, code_key and product_key: case-folded sort and search keys (byte order: COLLATE
  "C" on PostgreSQL), written by the app with the name, code and product; filled here (codes
  and products are ASCII, so SQL's lower() folds them as the app does; names are folded in
  Python). Indexes (user_id, key, id) for each, and (user_id, is_test_mode, id); the index on
  (user_id, code, id) gives way to the one on code_key. (Not generated columns: SQLite's
  batch migrations copy every column, and a generated one refuses the copy.)
On SQLite every devices change here is an ADD COLUMN or an index: rebuilding the table would
drop it under the foreign keys of tokens, events and metrics.
events: secret_slot (0 for every existing row), part of the hourly aggregation key.

Revision ID: c2d3e4f5a6b7
Revises: b1c2d3e4f5a6
Create Date: 2026-11-26 01:20:00.000000

"""
import unicodedata

from alembic import op
import sqlalchemy as sa

import bioweb.models


# revision identifiers, used by Alembic.
revision = 'c2d3e4f5a6b7'
down_revision = 'b1c2d3e4f5a6'
branch_labels = None
depends_on = None


def key_string(length):
    return sa.String(length=length).with_variant(sa.String(length=length, collation='C'), 'postgresql')


def search_key(text):
    # bioweb.models.search_key as of this revision (kept here: a migration does not change).
    return unicodedata.normalize('NFKC', text).casefold()


def upgrade():
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name_key', key_string(300), server_default='', nullable=False))
        batch_op.add_column(sa.Column('code_key', key_string(40), server_default='', nullable=False))
        batch_op.add_column(sa.Column('product_key', key_string(120), server_default='', nullable=False))
        batch_op.add_column(sa.Column('client_secret_serial', sa.Integer(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('client_secret_created_time', bioweb.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('client_secret_expires_time', bioweb.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('client_secret2_digest', sa.String(length=64), server_default='', nullable=False))
        batch_op.add_column(sa.Column('client_secret2_serial', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('client_secret2_created_time', bioweb.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('client_secret2_expires_time', bioweb.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.drop_index('ix_devices_user_code')
        batch_op.create_index('ix_devices_user_name_key', ['user_id', 'name_key', 'id'], unique=False)
        batch_op.create_index('ix_devices_user_code_key', ['user_id', 'code_key', 'id'], unique=False)
        batch_op.create_index('ix_devices_user_product_key', ['user_id', 'product_key', 'id'], unique=False)
        batch_op.create_index('ix_devices_user_test_mode', ['user_id', 'is_test_mode', 'id'], unique=False)

    op.execute("UPDATE devices SET code_key = lower(code), product_key = lower(product_name)")
    # The named devices' keys (names are few: the column is new), folded as the app folds them.
    devices = sa.table('devices', sa.column('id', sa.Integer()), sa.column('name', sa.String()), sa.column('name_key', sa.String()))
    conn = op.get_bind()
    named = conn.execute(sa.select(devices.c.id, devices.c.name).where(devices.c.name.is_not(None))).all()
    for device_id, name in named:
        conn.execute(devices.update().where(devices.c.id == device_id).values(name_key=search_key(name)))

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('secret_slot', sa.SmallInteger(), server_default='0', nullable=False))
        batch_op.drop_constraint('uq_events_device_kind_bucket', type_='unique')
        batch_op.create_unique_constraint('uq_events_device_kind_bucket_slot', ['device_id', 'kind', 'bucket', 'secret_slot'])


def downgrade():
    # One row per device, kind and hour again: a slot-2 count joins its slot-1 row of the hour.
    op.execute(
        "UPDATE events SET count = count + (SELECT e2.count FROM events e2 WHERE e2.device_id = events.device_id"
        " AND e2.kind = events.kind AND e2.bucket = events.bucket AND e2.secret_slot = 2)"
        " WHERE secret_slot = 1 AND bucket IS NOT NULL AND EXISTS (SELECT 1 FROM events e2"
        " WHERE e2.device_id = events.device_id AND e2.kind = events.kind AND e2.bucket = events.bucket"
        " AND e2.secret_slot = 2)"
    )
    op.execute(
        "DELETE FROM events WHERE secret_slot = 2 AND bucket IS NOT NULL AND EXISTS (SELECT 1 FROM events e1"
        " WHERE e1.device_id = events.device_id AND e1.kind = events.kind AND e1.bucket = events.bucket"
        " AND e1.secret_slot = 1)"
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_constraint('uq_events_device_kind_bucket_slot', type_='unique')
        batch_op.create_unique_constraint('uq_events_device_kind_bucket', ['device_id', 'kind', 'bucket'])
        batch_op.drop_column('secret_slot')

    # One secret per device again: a device holding only its slot-2 secret keeps that one.
    op.execute(
        "UPDATE devices SET client_secret_digest = client_secret2_digest"
        " WHERE client_secret_digest = '' AND client_secret2_digest <> ''"
    )
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_index('ix_devices_user_test_mode')
        batch_op.drop_index('ix_devices_user_product_key')
        batch_op.drop_index('ix_devices_user_code_key')
        batch_op.drop_index('ix_devices_user_name_key')
        batch_op.create_index('ix_devices_user_code', ['user_id', 'code', 'id'], unique=False)
        batch_op.drop_column('client_secret2_expires_time')
        batch_op.drop_column('client_secret2_created_time')
        batch_op.drop_column('client_secret2_serial')
        batch_op.drop_column('client_secret2_digest')
        batch_op.drop_column('client_secret_expires_time')
        batch_op.drop_column('client_secret_created_time')
        batch_op.drop_column('client_secret_serial')
        batch_op.drop_column('product_key')
        batch_op.drop_column('code_key')
        batch_op.drop_column('name_key')
