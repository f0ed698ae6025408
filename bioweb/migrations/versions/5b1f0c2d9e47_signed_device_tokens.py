"""signed device access tokens: credential generation, last token time; device tokens retired

Device access tokens are now signed and stored nowhere, and client credentials no longer
get a refresh token. The stored device access and refresh tokens are deleted: a device
simply asks /token again with its client secret.

Revision ID: 5b1f0c2d9e47
Revises: 352cbc9e1823
Create Date: 2026-11-25 23:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

import bioweb.models


# revision identifiers, used by Alembic.
revision = '5b1f0c2d9e47'
down_revision = '352cbc9e1823'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('credential_generation', sa.Integer(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('last_token_time', bioweb.models.UTCDateTime(timezone=True), nullable=True))
    op.execute("DELETE FROM tokens WHERE kind IN ('access', 'refresh') AND device_id IS NOT NULL")


def downgrade():
    # The deleted device tokens are not brought back: devices ask /token again.
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_column('last_token_time')
        batch_op.drop_column('credential_generation')
