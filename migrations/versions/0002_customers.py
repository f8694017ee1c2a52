"""Customers, contacts, consents, search terms, funnel stages, orders, the timeline, API tokens, imports.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('stages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=32), nullable=True),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stages')),
    sa.UniqueConstraint('key', name=op.f('uq_stages_key'))
    )
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=12), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_api_tokens_created_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    stages = sa.table("stages", sa.column("key", sa.String), sa.column("name", sa.String),
                      sa.column("position", sa.Integer))
    op.bulk_insert(stages, [
        {"key": key, "name": name, "position": position}
        for position, (key, name) in enumerate([
            ("new", "New"), ("first_purchase", "First purchase"), ("repeat", "Repeat"), ("regular", "Regular"),
            ("lapsing", "Lapsing"), ("lapsed", "Lapsed"), ("in_reactivation", "In reactivation"),
            ("returned", "Returned"), ("inactive", "Inactive"),
        ])
    ])
    op.create_table('customers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('external_ref', sa.String(length=80), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('sort_name', sa.String(length=200).with_variant(sa.String(length=200, collation='C'), 'postgresql'), nullable=False),
    sa.Column('preferred_channel', sa.Enum('email', 'sms', 'telegram', 'whatsapp', 'phone', name='channel', native_enum=False, length=32), nullable=True),
    sa.Column('birthday', sa.Date(), nullable=True),
    sa.Column('gender', sa.Enum('female', 'male', 'other', name='gender', native_enum=False, length=32), nullable=True),
    sa.Column('city', sa.String(length=120), nullable=True),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('manager_id', sa.Integer(), nullable=True),
    sa.Column('stage_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.Enum('active', 'lapsing', 'lapsed', 'in_sequence', 'responded', 'inactive', name='status', native_enum=False, length=32), nullable=False),
    sa.Column('leave_reason', sa.Enum('price', 'conditions', 'service', 'channel', 'irrelevant', 'other', name='leavereason', native_enum=False, length=32), nullable=True),
    sa.Column('leave_reason_note', sa.String(length=500), nullable=True),
    sa.Column('do_not_contact', sa.Boolean(), nullable=False),
    sa.Column('complainer', sa.Boolean(), nullable=False),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('source', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('order_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('total_spent', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('average_check', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('first_order_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_order_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('usual_interval_days', sa.Float(), nullable=True),
    sa.Column('expected_next_order_on', sa.Date(), nullable=True),
    sa.Column('favourite_products', sa.JSON(), nullable=False),
    sa.Column('favourite_categories', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['manager_id'], ['users.id'], name=op.f('fk_customers_manager_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['stage_id'], ['stages.id'], name=op.f('fk_customers_stage_id_stages'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers')),
    sa.UniqueConstraint('external_ref', name=op.f('uq_customers_external_ref'))
    )
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.create_index('ix_customers_city_last_order', ['city', 'last_order_at', 'id'], unique=False)
        batch_op.create_index('ix_customers_last_order_at_id', ['last_order_at', 'id'], unique=False)
        batch_op.create_index('ix_customers_manager_last_order', ['manager_id', 'last_order_at', 'id'], unique=False)
        batch_op.create_index('ix_customers_order_count_id', ['order_count', 'id'], unique=False)
        batch_op.create_index('ix_customers_sort_name_id', ['sort_name', 'id'], unique=False)
        batch_op.create_index('ix_customers_stage_last_order', ['stage_id', 'last_order_at', 'id'], unique=False)
        batch_op.create_index('ix_customers_status_last_order', ['status', 'last_order_at', 'id'], unique=False)
        batch_op.create_index('ix_customers_status_ltv', ['status', 'total_spent', 'id'], unique=False)
        batch_op.create_index('ix_customers_manager_ltv', ['manager_id', 'total_spent', 'id'], unique=False)
        batch_op.create_index('ix_customers_total_spent_id', ['total_spent', 'id'], unique=False)

    op.create_table('import_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('customers', 'orders', name='importkind', native_enum=False, length=32), nullable=False),
    sa.Column('state', sa.Enum('mapping', 'queued', 'running', 'done', 'failed', name='importstate', native_enum=False, length=32), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=True),
    sa.Column('encoding', sa.String(length=20), nullable=False),
    sa.Column('delimiter', sa.String(length=1), nullable=False),
    sa.Column('mapping', sa.JSON(), nullable=False),
    sa.Column('total_rows', sa.Integer(), nullable=False),
    sa.Column('processed_rows', sa.Integer(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('unchanged', sa.Integer(), nullable=False),
    sa.Column('error_count', sa.Integer(), nullable=False),
    sa.Column('errors', sa.JSON(), nullable=False),
    sa.Column('failure', sa.String(length=500), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_import_runs_created_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_runs'))
    )
    op.create_table('consents',
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.Enum('email', 'sms', 'telegram', 'whatsapp', 'phone', name='channel', native_enum=False, length=32), nullable=False),
    sa.Column('granted', sa.Boolean(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('how', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_consents_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('customer_id', 'channel', name=op.f('pk_consents'))
    )
    op.create_table('contacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('email', 'phone', 'telegram', 'whatsapp', name='contactkind', native_enum=False, length=32), nullable=False),
    sa.Column('value', sa.String(length=200).with_variant(sa.String(length=200, collation='C'), 'postgresql'), nullable=False),
    sa.Column('invalid', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_contacts_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts')),
    sa.UniqueConstraint('customer_id', 'kind', 'value', name='uq_contacts_customer_kind_value')
    )
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contacts_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index('ix_contacts_kind_value', ['kind', 'value'], unique=False)

    op.create_table('interactions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('note', 'call', 'message_out', 'message_in', 'order', 'edit', 'stage', 'status', 'consent', 'import', 'merge', 'created', name='kind', native_enum=False, length=32), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('outcome', sa.String(length=40), nullable=True),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_interactions_customer_id_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_interactions_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_interactions'))
    )
    with op.batch_alter_table('interactions', schema=None) as batch_op:
        batch_op.create_index('ix_interactions_customer_id_at', ['customer_id', 'at'], unique=False)

    op.create_table('orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=40), nullable=False),
    sa.Column('external_id', sa.String(length=80), nullable=False),
    sa.Column('placed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.Enum('paid', 'cancelled', 'refunded', name='orderstatus', native_enum=False, length=32), nullable=False),
    sa.Column('items', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_orders_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('source', 'external_id', name='uq_orders_source_external_id')
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_customer_id_placed_at', ['customer_id', 'placed_at'], unique=False)

    op.create_table('search_terms',
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('term', sa.String(length=200).with_variant(sa.String(length=200, collation='C'), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_search_terms_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('customer_id', 'term', name=op.f('pk_search_terms'))
    )
    with op.batch_alter_table('search_terms', schema=None) as batch_op:
        batch_op.create_index('ix_search_terms_term_customer', ['term', 'customer_id'], unique=False)



def downgrade():
    with op.batch_alter_table('search_terms', schema=None) as batch_op:
        batch_op.drop_index('ix_search_terms_term_customer')

    op.drop_table('search_terms')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_customer_id_placed_at')

    op.drop_table('orders')
    with op.batch_alter_table('interactions', schema=None) as batch_op:
        batch_op.drop_index('ix_interactions_customer_id_at')

    op.drop_table('interactions')
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index('ix_contacts_kind_value')
        batch_op.drop_index(batch_op.f('ix_contacts_customer_id'))

    op.drop_table('contacts')
    op.drop_table('consents')
    op.drop_table('import_runs')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index('ix_customers_total_spent_id')
        batch_op.drop_index('ix_customers_status_last_order')
        batch_op.drop_index('ix_customers_status_ltv')
        batch_op.drop_index('ix_customers_manager_ltv')
        batch_op.drop_index('ix_customers_stage_last_order')
        batch_op.drop_index('ix_customers_sort_name_id')
        batch_op.drop_index('ix_customers_order_count_id')
        batch_op.drop_index('ix_customers_manager_last_order')
        batch_op.drop_index('ix_customers_last_order_at_id')
        batch_op.drop_index('ix_customers_city_last_order')

    op.drop_table('customers')
    op.drop_table('api_tokens')
    op.drop_table('stages')
