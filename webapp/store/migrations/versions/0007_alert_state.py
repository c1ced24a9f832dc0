"""alert state: issue 5 (alerts firing state kept in the store); owned by the monitoring work

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 10:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alert_states',
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('instance_name', sa.String(length=40), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('alert', sa.JSON(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('alert_states', schema=None) as batch_op:
        batch_op.create_index('ix_alert_states_instance_name', ['instance_name'], unique=False)
        batch_op.create_index('ix_alert_states_resolved_at', ['resolved_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('alert_states', schema=None) as batch_op:
        batch_op.drop_index('ix_alert_states_resolved_at')
        batch_op.drop_index('ix_alert_states_instance_name')
    op.drop_table('alert_states')
