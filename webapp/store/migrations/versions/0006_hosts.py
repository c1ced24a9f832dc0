"""hosts: issue 7 (hosts registry, member placement on hosts); owned by the multi-host work

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 10:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'hosts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=63), nullable=False),
        sa.Column('address', sa.String(length=255), nullable=False),
        sa.Column('ssh_user', sa.String(length=32), nullable=False),
        sa.Column('ssh_port', sa.Integer(), nullable=False),
        sa.Column('key_path', sa.Text(), nullable=True),
        sa.Column('key_enc', sa.Text(), nullable=True),
        sa.Column('labels', sa.JSON(), nullable=False),
        sa.Column('capacity', sa.Integer(), nullable=False),
        sa.Column('created_by', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('hosts')
