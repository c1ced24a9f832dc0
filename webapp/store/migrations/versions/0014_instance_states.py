"""instance states: the newest live state of each instance, which the views read (issue 17, item 2)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 22:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No rows to begin with: the first view of an instance asks Patroni, as before.
    op.create_table(
        'instance_states',
        sa.Column('instance_name', sa.String(length=40), nullable=False),
        sa.Column('state', sa.JSON(), nullable=False),
        sa.Column('sampled_at', sa.DateTime(), nullable=False),
        sa.Column('watched_at', sa.DateTime(), nullable=True),
        sa.Column('live_until', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('instance_name'),
    )


def downgrade() -> None:
    op.drop_table('instance_states')
