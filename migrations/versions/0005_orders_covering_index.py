"""Orders by customer: status and amount join the (customer, placed at) index, so the rebuild's
totals read the index alone.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_customer_placed_status_amount',
                              ['customer_id', 'placed_at', 'status', 'amount'], unique=False)
        batch_op.drop_index('ix_orders_customer_id_placed_at')


def downgrade():
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_customer_id_placed_at', ['customer_id', 'placed_at'], unique=False)
        batch_op.drop_index('ix_orders_customer_placed_status_amount')
