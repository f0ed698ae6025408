"""server-side sessions (issue 14): placeholder, filled by the sessions work

Revision ID: b1c2d3e4f5a6
Revises: a4c2e8d91b36
Create Date: 2026-11-26 01:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b1c2d3e4f5a6'
down_revision = 'a4c2e8d91b36'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
