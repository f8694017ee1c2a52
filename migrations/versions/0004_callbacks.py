"""Call-backs: who a manager should phone, when and why.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

REASONS = ('lapsing', 'lapsed', 'sequence', 'promised', 'birthday', 'vip', 'manual')


def upgrade():
    op.create_table(
        'callbacks',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('manager_id', sa.Integer(), nullable=True),
        sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('reason', sa.Enum(*REASONS, name='callreason', native_enum=False, length=32), nullable=False),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('outcome', sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_callbacks_created_by_id_users'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_callbacks_customer_id_customers'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['manager_id'], ['users.id'], name=op.f('fk_callbacks_manager_id_users'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_callbacks')),
    )
    with op.batch_alter_table('callbacks', schema=None) as batch_op:
        batch_op.create_index('ix_callbacks_customer_open', ['customer_id', 'done_at'], unique=False)
        batch_op.create_index('ix_callbacks_manager_open_due', ['manager_id', 'done_at', 'due_at'], unique=False)


def downgrade():
    with op.batch_alter_table('callbacks', schema=None) as batch_op:
        batch_op.drop_index('ix_callbacks_manager_open_due')
        batch_op.drop_index('ix_callbacks_customer_open')
    op.drop_table('callbacks')
