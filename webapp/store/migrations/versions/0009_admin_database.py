"""admin database: an instance's own database owned by its admin role (issue 11)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 06:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Instances made before this keep their URIs on "postgres"; new ones get the database the create asked for.
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('admin_database', sa.String(length=63), nullable=False,
                                      server_default='postgres'))


def downgrade() -> None:
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_column('admin_database')
