"""Call-back outcomes: who logged the call and what an undo must put back; at most one open
call-back per customer (two managers must never both be sent to call the same person).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    # Bases from before this revision may hold two open call-backs for one customer (the race
    # the unique index now closes): keep the earliest due, close the others as duplicates.
    op.execute("""
        UPDATE callbacks SET done_at = created_at, outcome = 'duplicate'
        WHERE done_at IS NULL AND EXISTS (
            SELECT 1 FROM callbacks AS other
            WHERE other.customer_id = callbacks.customer_id AND other.done_at IS NULL
              AND (other.due_at < callbacks.due_at OR (other.due_at = callbacks.due_at AND other.id < callbacks.id)))
    """)
    with op.batch_alter_table('callbacks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('handled_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('undo', sa.JSON(), nullable=True))
        batch_op.create_foreign_key('fk_callbacks_handled_by_id_users', 'users', ['handled_by_id'], ['id'],
                                    ondelete='SET NULL')
        batch_op.create_index('uq_callbacks_customer_open', ['customer_id'], unique=True,
                              sqlite_where=sa.text('done_at IS NULL'), postgresql_where=sa.text('done_at IS NULL'))
        batch_op.create_index('ix_callbacks_done_at', ['done_at'], unique=False)


def downgrade():
    with op.batch_alter_table('callbacks', schema=None) as batch_op:
        batch_op.drop_index('ix_callbacks_done_at')
        batch_op.drop_index('uq_callbacks_customer_open')
        batch_op.drop_constraint('fk_callbacks_handled_by_id_users', type_='foreignkey')
        batch_op.drop_column('undo')
        batch_op.drop_column('handled_by_id')
