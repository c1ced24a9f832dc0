"""capacity allowances: each user's storage allowance and maximum number of databases; the size a database over
its quota had when it became read-only (issue 12, part 3)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 11:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL: the configured default (existing users get it too).
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('storage_allowance_mb', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('max_databases', sa.Integer(), nullable=True))
    with op.batch_alter_table('databases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('quota_baseline_bytes', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('databases', schema=None) as batch_op:
        batch_op.drop_column('quota_baseline_bytes')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('max_databases')
        batch_op.drop_column('storage_allowance_mb')
