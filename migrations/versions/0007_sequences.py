"""Reactivation sequences: sequences and steps, enrolments, messages, automatic enrolment rules,
and the customer's own time zone for the send window.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timezone', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('inactive_reason', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('inactive_since', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('inactive_how', sa.String(length=20), nullable=True))
        batch_op.create_index('ix_customers_status_inactive_since', ['status', 'inactive_since', 'id'])

    op.create_table(
        'sequences',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('window_start', sa.SmallInteger(), server_default='9', nullable=False),
        sa.Column('window_end', sa.SmallInteger(), server_default='20', nullable=False),
        sa.Column('weekdays', sa.JSON(), nullable=False),
        sa.Column('grace_days', sa.SmallInteger(), server_default='7', nullable=False),
        sa.Column('holdout_percent', sa.SmallInteger(), server_default='0', nullable=False),
        sa.Column('return_days', sa.SmallInteger(), server_default='30', nullable=False),
        sa.Column('link_url', sa.String(length=500), nullable=True),
        sa.Column('discount_code', sa.String(length=60), nullable=True),
        sa.Column('paused', sa.Boolean(), server_default='0', nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name='fk_sequences_created_by_id_users',
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name='pk_sequences'),
    )
    op.create_table(
        'sequence_steps',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('sequence_id', sa.Integer(), nullable=False),
        sa.Column('position', sa.SmallInteger(), nullable=False),
        sa.Column('delay_days', sa.Integer(), nullable=False),
        sa.Column('delay_hours', sa.Integer(), nullable=False),
        sa.Column('channel', sa.Enum('preferred', 'email', 'sms', 'telegram', 'whatsapp', name='stepchannel',
                                     native_enum=False, length=32), nullable=False),
        sa.Column('subject', sa.String(length=200), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['sequence_id'], ['sequences.id'], name='fk_sequence_steps_sequence_id_sequences',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_sequence_steps'),
        sa.UniqueConstraint('sequence_id', 'position', name='uq_sequence_steps_position'),
    )
    op.create_table(
        'enrolments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('sequence_id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('state', sa.Enum('active', 'holdout', 'responded', 'inactive', 'stopped', name='enrolmentstate',
                                   native_enum=False, length=32), nullable=False),
        sa.Column('source', sa.String(length=40), nullable=False),
        sa.Column('enrolled_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('enrolled_by_id', sa.Integer(), nullable=True),
        sa.Column('next_step', sa.SmallInteger(), nullable=False),
        sa.Column('next_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('sent', sa.SmallInteger(), server_default='0', nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('end_reason', sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name='fk_enrolments_customer_id_customers',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['enrolled_by_id'], ['users.id'], name='fk_enrolments_enrolled_by_id_users',
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['sequence_id'], ['sequences.id'], name='fk_enrolments_sequence_id_sequences',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_enrolments'),
    )
    op.create_index('ix_enrolments_state_next_at', 'enrolments', ['state', 'next_at'])
    op.create_index('ix_enrolments_customer_state', 'enrolments', ['customer_id', 'state'])
    op.create_index('ix_enrolments_sequence_state', 'enrolments', ['sequence_id', 'state'])
    op.create_index('uq_enrolments_customer_active', 'enrolments', ['customer_id'], unique=True,
                    sqlite_where=sa.text("state = 'active'"), postgresql_where=sa.text("state = 'active'"))
    op.create_table(
        'messages',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('enrolment_id', sa.Integer(), nullable=False),
        sa.Column('sequence_id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('step', sa.SmallInteger(), nullable=False),
        sa.Column('state', sa.Enum('queued', 'sending', 'sent', 'failed', 'skipped', 'uncertain',
                                   name='messagestate', native_enum=False, length=32), nullable=False),
        sa.Column('reason', sa.String(length=40), nullable=True),
        sa.Column('channel', sa.String(length=16), nullable=True),
        sa.Column('recipient', sa.String(length=320), nullable=True),
        sa.Column('subject', sa.String(length=200), nullable=True),
        sa.Column('body', sa.Text(), nullable=True),
        sa.Column('attempts', sa.SmallInteger(), server_default='0', nullable=False),
        sa.Column('queued_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('enqueued_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('not_before', sa.DateTime(timezone=True), nullable=True),
        sa.Column('sending_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('clicked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('result', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name='fk_messages_customer_id_customers',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['enrolment_id'], ['enrolments.id'], name='fk_messages_enrolment_id_enrolments',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['sequence_id'], ['sequences.id'], name='fk_messages_sequence_id_sequences',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_messages'),
        sa.UniqueConstraint('enrolment_id', 'step', name='uq_messages_enrolment_step'),
    )
    op.create_index('ix_messages_state_enqueued_at', 'messages', ['state', 'enqueued_at'])
    op.create_index('ix_messages_customer_queued_at', 'messages', ['customer_id', 'queued_at'])
    op.create_index('ix_messages_sequence_step_state', 'messages', ['sequence_id', 'step', 'state'])
    op.create_table(
        'enrolment_rules',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('sequence_id', sa.Integer(), nullable=False),
        sa.Column('trigger', sa.Enum('lapsing', 'lapsed', 'birthday', 'after_order', 'before_expected',
                                     name='trigger', native_enum=False, length=32), nullable=False),
        sa.Column('days', sa.SmallInteger(), server_default='0', nullable=False),
        sa.Column('groups', sa.JSON(), nullable=False),
        sa.Column('active', sa.Boolean(), server_default='1', nullable=False),
        sa.Column('last_run_on', sa.Date(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['sequence_id'], ['sequences.id'], name='fk_enrolment_rules_sequence_id_sequences',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_enrolment_rules'),
    )


def downgrade():
    op.drop_table('enrolment_rules')
    op.drop_table('messages')
    op.drop_table('enrolments')
    op.drop_table('sequence_steps')
    op.drop_table('sequences')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index('ix_customers_status_inactive_since')
        batch_op.drop_column('inactive_how')
        batch_op.drop_column('inactive_since')
        batch_op.drop_column('inactive_reason')
        batch_op.drop_column('timezone')
