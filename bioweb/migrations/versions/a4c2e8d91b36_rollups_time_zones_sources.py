"""rollups of samples per metric and 15 minutes, and per hour, of UTC (filled from the samples stored so far),
people's time zones, and their order of data sources

Revision ID: a4c2e8d91b36
Revises: e1a5d0c4b7f2
Create Date: 2026-11-26 01:15:00.000000

"""
from alembic import op
import sqlalchemy as sa

import bioweb.models


# revision identifiers, used by Alembic.
revision = 'a4c2e8d91b36'
down_revision = 'e1a5d0c4b7f2'
branch_labels = None
depends_on = None

PARTITIONS = 16

# (table, its unit column): per 15 minutes of UTC, and per hour of UTC.
ROLLUPS = (('quantity_rollups', 'slot'), ('quantity_hour_rollups', 'hour'))

POSTGRESQL_ROLLUPS = """
CREATE TABLE {table} (
    metric_id INTEGER NOT NULL,
    {unit} BIGINT NOT NULL,
    sample_count INTEGER NOT NULL,
    total FLOAT(53) NOT NULL,
    minimum FLOAT(53) NOT NULL,
    maximum FLOAT(53) NOT NULL,
    latest_value FLOAT(53) NOT NULL,
    latest_start TIMESTAMP WITH TIME ZONE NOT NULL,
    latest_received TIMESTAMP WITH TIME ZONE NOT NULL,
    latest_id BIGINT NOT NULL,
    CONSTRAINT pk_{table} PRIMARY KEY (metric_id, {unit}),
    CONSTRAINT fk_{table}_metric_id_metrics FOREIGN KEY(metric_id) REFERENCES metrics (id)
) PARTITION BY HASH (metric_id)
"""


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('time_zone', sa.String(length=64), server_default='UTC', nullable=False))

    for table, unit in ROLLUPS:
        if op.get_bind().dialect.name == 'postgresql':
            op.execute(POSTGRESQL_ROLLUPS.format(table=table, unit=unit))
            for remainder in range(PARTITIONS):
                op.execute(
                    f'CREATE TABLE {table}_p{remainder:02d} PARTITION OF {table} '
                    f'FOR VALUES WITH (MODULUS {PARTITIONS}, REMAINDER {remainder})'
                )
            continue
        op.create_table(
            table,
            sa.Column('sample_count', sa.Integer(), nullable=False),
            sa.Column('total', sa.Float(precision=53), nullable=False),
            sa.Column('minimum', sa.Float(precision=53), nullable=False),
            sa.Column('maximum', sa.Float(precision=53), nullable=False),
            sa.Column('latest_value', sa.Float(precision=53), nullable=False),
            sa.Column('latest_start', bioweb.models.UTCDateTime(timezone=True), nullable=False),
            sa.Column('latest_received', bioweb.models.UTCDateTime(timezone=True), nullable=False),
            sa.Column('latest_id', sa.BigInteger(), nullable=False),
            sa.Column('metric_id', sa.Integer(), nullable=False),
            sa.Column(unit, sa.BigInteger(), autoincrement=False, nullable=False),
            sa.ForeignKeyConstraint(['metric_id'], ['metrics.id'], name=op.f(f'fk_{table}_metric_id_metrics')),
            sa.PrimaryKeyConstraint('metric_id', unit, name=op.f(f'pk_{table}')),
            sqlite_with_rowid=False,
        )

    op.create_table(
        'source_priorities',
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('sample_type', sa.String(length=64), nullable=False),
        sa.Column('device_id', sa.Integer(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_source_priorities_device_id_devices')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_source_priorities_user_id_users')),
        sa.PrimaryKeyConstraint('user_id', 'sample_type', 'device_id', name=op.f('pk_source_priorities')),
    )

    # The samples stored before this revision get their rollups, metric by metric.
    from bioweb.services import rollups

    rollups.rebuild(op.get_bind())


def downgrade():
    op.drop_table('source_priorities')
    for table, _ in ROLLUPS:
        op.drop_table(table)  # on PostgreSQL its partitions go with it
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('time_zone')
