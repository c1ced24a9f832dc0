"""front door: token scope and expiry, session versions, instance access, rate limit counters (issue 12, part 4)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 09:00:00
"""
from datetime import datetime, timedelta, timezone

from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), nullable=False, server_default='0'))

    # Tokens made before this keep working with their old powers (write) for 30 days (TOKEN_DAYS' default), then
    # expire like new ones.
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scope', sa.String(length=8), nullable=False, server_default='write'))
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
    tokens = sa.table('api_tokens', sa.column('expires_at', sa.DateTime(timezone=True)))
    op.execute(tokens.update().values(expires_at=datetime.now(timezone.utc) + timedelta(days=30)))
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.alter_column('expires_at', existing_type=sa.DateTime(timezone=True), nullable=False)

    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('access_restricted', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table('instance_access',
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('instance_id', 'user_id')
    )
    with op.batch_alter_table('instance_access', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_instance_access_user_id'), ['user_id'], unique=False)

    op.create_table('rate_limits',
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('rate_limits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rate_limits_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rate_limits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rate_limits_expires_at'))
    op.drop_table('rate_limits')
    with op.batch_alter_table('instance_access', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_instance_access_user_id'))
    op.drop_table('instance_access')
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_column('access_restricted')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('expires_at')
        batch_op.drop_column('scope')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_version')
