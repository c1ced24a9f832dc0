"""backups (issue 15): the members' pgBackRest port, each instance's stanza with its policy and archiver state, the
cached list of backups, and the control plane's sealed repository secrets

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 22:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL: a member of an instance without backups (every instance made before this).
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('backup_port', sa.Integer(), nullable=True))
    op.create_table(
        'backup_stanzas',
        sa.Column('stanza', sa.String(length=64), nullable=False),
        sa.Column('instance_id', sa.Integer(), nullable=True),
        sa.Column('instance_name', sa.String(length=40), nullable=False),
        sa.Column('full_every_days', sa.Integer(), nullable=False),
        sa.Column('diff_every_days', sa.Integer(), nullable=False),
        sa.Column('retention_type', sa.String(length=8), nullable=False),
        sa.Column('retention_full', sa.Integer(), nullable=False),
        sa.Column('last_archived_wal', sa.String(length=64), nullable=True),
        sa.Column('last_archived_time', sa.DateTime(timezone=True), nullable=True),
        sa.Column('archive_failed_count', sa.BigInteger(), nullable=True),
        sa.Column('last_failed_time', sa.DateTime(timezone=True), nullable=True),
        sa.Column('current_wal', sa.String(length=64), nullable=True),
        sa.Column('archiver_checked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('stanza'),
    )
    op.create_index('ix_backup_stanzas_instance_id', 'backup_stanzas', ['instance_id'])
    op.create_index('ix_backup_stanzas_instance_name', 'backup_stanzas', ['instance_name'])
    op.create_table(
        'backups',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('stanza', sa.String(length=64), nullable=False),
        sa.Column('label', sa.String(length=64), nullable=False),
        sa.Column('type', sa.String(length=8), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('size_bytes', sa.BigInteger(), nullable=True),
        sa.Column('repo_size_bytes', sa.BigInteger(), nullable=True),
        sa.Column('wal_start', sa.String(length=64), nullable=True),
        sa.Column('wal_stop', sa.String(length=64), nullable=True),
        sa.Column('error', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['stanza'], ['backup_stanzas.stanza'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('stanza', 'label', name='uq_backups_stanza_label'),
    )
    op.create_index('ix_backups_stanza', 'backups', ['stanza'])
    op.create_table(
        'backup_repo',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('secrets_enc', sa.Text(), nullable=False),
        sa.Column('applied_clients', sa.JSON(), nullable=True),
        sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade() -> None:
    op.drop_table('backup_repo')
    op.drop_index('ix_backups_stanza', table_name='backups')
    op.drop_table('backups')
    op.drop_index('ix_backup_stanzas_instance_name', table_name='backup_stanzas')
    op.drop_index('ix_backup_stanzas_instance_id', table_name='backup_stanzas')
    op.drop_table('backup_stanzas')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('backup_port')
