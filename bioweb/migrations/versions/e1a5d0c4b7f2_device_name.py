"""devices: an optional name, the user's own label

Revision ID: e1a5d0c4b7f2
Revises: 7c3d2a9e5f10
Create Date: 2026-11-25 23:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e1a5d0c4b7f2'
down_revision = '7c3d2a9e5f10'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name', sa.String(length=100), nullable=True))


def downgrade():
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_column('name')
