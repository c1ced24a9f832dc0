"""primary changes: issue 6 (failover history, member state); owned by the fault-tolerance work

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 10:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'primary_changes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('instance_id', sa.Integer(), nullable=False),
        sa.Column('instance_name', sa.String(length=40), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('from_member', sa.String(length=64), nullable=True),
        sa.Column('to_member', sa.String(length=64), nullable=False),
        sa.Column('cause', sa.String(length=16), nullable=False),
        sa.Column('timeline', sa.Integer(), nullable=False),
        sa.Column('switch_lsn', sa.BigInteger(), nullable=True),
        sa.Column('lag_bytes', sa.BigInteger(), nullable=True),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=True),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('instance_id', 'timeline', name='uq_primary_changes_instance_timeline'),
    )
    with op.batch_alter_table('primary_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_primary_changes_instance_id'), ['instance_id'], unique=False)
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lost_since', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('lost_since')
    with op.batch_alter_table('primary_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_primary_changes_instance_id'))
    op.drop_table('primary_changes')
