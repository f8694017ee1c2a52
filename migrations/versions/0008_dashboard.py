"""Dashboard summaries: sales per day, repeat orders per day and previous-order day, sales per day
by segment, enrolment outcomes per day, the base per status per night, cohort retention by month;
enrolments by date.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    # The dashboard's reactivation panel counts the enrolments of a period.
    op.create_index('ix_enrolments_enrolled_at', 'enrolments', ['enrolled_at'])
    op.create_table(
        'sales_days',
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('orders', sa.Integer(), nullable=False),
        sa.Column('revenue', sa.BigInteger(), nullable=False),
        sa.Column('first_orders', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('day', name=op.f('pk_sales_days')),
    )
    op.create_table(
        'repeat_days',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('prev_day', sa.Date(), nullable=False),
        sa.Column('running', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_repeat_days')),
    )
    op.create_index('ix_repeat_days_day_prev', 'repeat_days', ['day', 'prev_day', 'running'])
    op.create_table(
        'segment_sales_days',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('rfm', sa.SmallInteger(), nullable=True),
        sa.Column('behaviour', sa.String(length=32), nullable=True),
        sa.Column('orders', sa.Integer(), nullable=False),
        sa.Column('revenue', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_segment_sales_days')),
    )
    op.create_index('ix_segment_sales_days_day', 'segment_sales_days', ['day', 'rfm', 'behaviour', 'orders', 'revenue'])
    op.create_table(
        'reactivation_days',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('state', sa.String(length=20), nullable=False),
        sa.Column('returned', sa.Boolean(), nullable=False),
        sa.Column('enrolments', sa.Integer(), nullable=False),
        sa.Column('revenue', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_reactivation_days')),
    )
    op.create_index('ix_reactivation_days_day', 'reactivation_days', ['day'])
    op.create_table(
        'base_days',
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('customers', sa.Integer(), nullable=False),
        sa.Column('buyers', sa.Integer(), nullable=False),
        sa.Column('active', sa.Integer(), nullable=False),
        sa.Column('lapsing', sa.Integer(), nullable=False),
        sa.Column('lapsed', sa.Integer(), nullable=False),
        sa.Column('in_sequence', sa.Integer(), nullable=False),
        sa.Column('responded', sa.Integer(), nullable=False),
        sa.Column('inactive', sa.Integer(), nullable=False),
        sa.Column('estimated', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('day', name=op.f('pk_base_days')),
    )
    op.create_table(
        'cohort_months',
        sa.Column('cohort', sa.Date(), nullable=False),
        sa.Column('month_offset', sa.SmallInteger(), nullable=False),
        sa.Column('customers', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('cohort', 'month_offset', name=op.f('pk_cohort_months')),
    )


def downgrade():
    op.drop_index('ix_enrolments_enrolled_at', table_name='enrolments')
    op.drop_table('cohort_months')
    op.drop_table('base_days')
    op.drop_index('ix_reactivation_days_day', table_name='reactivation_days')
    op.drop_table('reactivation_days')
    op.drop_index('ix_segment_sales_days_day', table_name='segment_sales_days')
    op.drop_table('segment_sales_days')
    op.drop_index('ix_repeat_days_day_prev', table_name='repeat_days')
    op.drop_table('repeat_days')
    op.drop_table('sales_days')
