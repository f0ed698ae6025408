"""metrics and quantity samples (hash-partitioned by metric_id on PostgreSQL); samples scopes for PATs

Revision ID: 7c3d2a9e5f10
Revises: 5b1f0c2d9e47
Create Date: 2026-11-25 23:10:00.000000

"""
from alembic import op
import sqlalchemy as sa

import bioweb.models


# revision identifiers, used by Alembic.
revision = '7c3d2a9e5f10'
down_revision = '5b1f0c2d9e47'
branch_labels = None
depends_on = None

PARTITIONS = 16

# PATs that hold devices:* get the matching samples:* (PAT_SCOPES order), so scripts keep working.
SCOPE_GRANTS = {
    'devices:read': 'devices:read samples:read',
    'devices:write': 'devices:write samples:write',
    'devices:read devices:write': 'devices:read devices:write samples:read samples:write',
}

POSTGRESQL_SAMPLES = """
CREATE TABLE quantity_samples (
    id BIGSERIAL NOT NULL,
    uuid VARCHAR(36) NOT NULL,
    metric_id INTEGER NOT NULL,
    start_date TIMESTAMP WITH TIME ZONE NOT NULL,
    end_date TIMESTAMP WITH TIME ZONE NOT NULL,
    quantity FLOAT(53),
    sample_motion_context VARCHAR(16) NOT NULL,
    sample_sensor_location SMALLINT,
    sample_sensor_location_other VARCHAR(100) NOT NULL,
    is_null BOOLEAN NOT NULL,
    client_sample_id VARCHAR(200),
    client_sample_version BIGINT NOT NULL,
    received_time TIMESTAMP WITH TIME ZONE NOT NULL,
    CONSTRAINT pk_quantity_samples PRIMARY KEY (id, metric_id),
    CONSTRAINT fk_quantity_samples_metric_id_metrics FOREIGN KEY(metric_id) REFERENCES metrics (id)
) PARTITION BY HASH (metric_id)
"""


def upgrade():
    op.create_table(
        'metrics',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('uuid', sa.String(length=36), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('device_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('sample_type', sa.String(length=64), nullable=False),
        sa.Column('sample_type_other', sa.String(length=100), nullable=False),
        sa.Column('quantity_type', sa.String(length=32), nullable=False),
        sa.Column('quantity_type_other', sa.String(length=100), nullable=False),
        sa.Column('is_continuous_data', sa.Boolean(), nullable=False),
        sa.Column('created_time', bioweb.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('modified_time', bioweb.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('deleted_time', bioweb.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_metrics_device_id_devices')),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_metrics_tenant_id_tenants')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_metrics_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_metrics')),
        sa.UniqueConstraint('uuid', name=op.f('uq_metrics_uuid')),
    )
    with op.batch_alter_table('metrics', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_metrics_deleted_time'), ['deleted_time'], unique=False)
        batch_op.create_index('ix_metrics_device_id_id', ['device_id', 'id'], unique=False)
        batch_op.create_index('ix_metrics_user_id_id', ['user_id', 'id'], unique=False)

    if op.get_bind().dialect.name == 'postgresql':
        op.execute(POSTGRESQL_SAMPLES)
        for remainder in range(PARTITIONS):
            op.execute(
                f'CREATE TABLE quantity_samples_p{remainder:02d} PARTITION OF quantity_samples '
                f'FOR VALUES WITH (MODULUS {PARTITIONS}, REMAINDER {remainder})'
            )
    else:
        op.create_table(
            'quantity_samples',
            sa.Column('id', sa.Integer(), nullable=False),
            sa.Column('uuid', sa.String(length=36), nullable=False),
            sa.Column('metric_id', sa.Integer(), nullable=False),
            sa.Column('start_date', bioweb.models.UTCDateTime(timezone=True), nullable=False),
            sa.Column('end_date', bioweb.models.UTCDateTime(timezone=True), nullable=False),
            sa.Column('quantity', sa.Float(precision=53), nullable=True),
            sa.Column('sample_motion_context', sa.String(length=16), nullable=False),
            sa.Column('sample_sensor_location', sa.SmallInteger(), nullable=True),
            sa.Column('sample_sensor_location_other', sa.String(length=100), nullable=False),
            sa.Column('is_null', sa.Boolean(), nullable=False),
            sa.Column('client_sample_id', sa.String(length=200), nullable=True),
            sa.Column('client_sample_version', sa.BigInteger(), nullable=False),
            sa.Column('received_time', bioweb.models.UTCDateTime(timezone=True), nullable=False),
            sa.ForeignKeyConstraint(['metric_id'], ['metrics.id'], name=op.f('fk_quantity_samples_metric_id_metrics')),
            sa.PrimaryKeyConstraint('id', name=op.f('pk_quantity_samples')),
        )
    op.create_index('ix_quantity_samples_metric_start', 'quantity_samples', ['metric_id', 'start_date', 'id'])
    op.create_index('ix_quantity_samples_uuid', 'quantity_samples', ['uuid'])
    op.create_index(
        'uq_quantity_samples_metric_client_id', 'quantity_samples', ['metric_id', 'client_sample_id'], unique=True,
        sqlite_where=sa.text('client_sample_id IS NOT NULL'), postgresql_where=sa.text('client_sample_id IS NOT NULL'),
    )
    op.create_index(
        'uq_quantity_samples_metric_dates', 'quantity_samples', ['metric_id', 'start_date', 'end_date'], unique=True,
        sqlite_where=sa.text('client_sample_id IS NULL'), postgresql_where=sa.text('client_sample_id IS NULL'),
    )

    tokens = sa.table('tokens', sa.column('kind', sa.String), sa.column('scope', sa.String))
    for old, new in SCOPE_GRANTS.items():
        op.execute(tokens.update().where(tokens.c.kind == 'pat', tokens.c.scope == old).values(scope=new))


def downgrade():
    tokens = sa.table('tokens', sa.column('kind', sa.String), sa.column('scope', sa.String))
    for old, new in SCOPE_GRANTS.items():
        op.execute(tokens.update().where(tokens.c.kind == 'pat', tokens.c.scope == new).values(scope=old))
    op.execute(tokens.update().where(tokens.c.kind == 'pat', tokens.c.scope.in_(
        ['samples:read', 'samples:write', 'samples:read samples:write'])).values(scope='devices:read'))
    op.drop_table('quantity_samples')  # on PostgreSQL its partitions go with it
    with op.batch_alter_table('metrics', schema=None) as batch_op:
        batch_op.drop_index('ix_metrics_user_id_id')
        batch_op.drop_index('ix_metrics_device_id_id')
        batch_op.drop_index(batch_op.f('ix_metrics_deleted_time'))
    op.drop_table('metrics')
