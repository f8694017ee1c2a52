"""Segments: RFM scores, behaviour classes, cadence (lapse), value at risk, pinned stages, saved
segments, team settings and the RFM grid summary.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('rfm_cells',
    sa.Column('rfm', sa.SmallInteger(), autoincrement=False, nullable=False),
    sa.Column('customers', sa.Integer(), nullable=False),
    sa.Column('revenue', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('rfm', name=op.f('pk_rfm_cells'))
    )
    op.create_table('team_settings',
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_team_settings'))
    )
    op.create_table('segments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('filters', sa.JSON(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_segments_created_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_segments')),
    sa.UniqueConstraint('name', name=op.f('uq_segments_name'))
    )
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('r_score', sa.SmallInteger(), nullable=True))
        batch_op.add_column(sa.Column('f_score', sa.SmallInteger(), nullable=True))
        batch_op.add_column(sa.Column('m_score', sa.SmallInteger(), nullable=True))
        batch_op.add_column(sa.Column('rfm', sa.SmallInteger(), nullable=True))
        batch_op.add_column(sa.Column('behaviour', sa.Enum('frequent', 'periodic', 'stopped', 'rare', 'one_off', name='behaviour', native_enum=False, length=32), nullable=True))
        batch_op.add_column(sa.Column('lapse', sa.Enum('on_track', 'lapsing', 'lapsed', name='lapse', native_enum=False, length=32), nullable=True))
        batch_op.add_column(sa.Column('at_risk', sa.BigInteger(), server_default='0', nullable=False))
        # A plain '0' (false on both databases): an expression default makes Alembic rebuild the
        # whole customers table on SQLite, minutes at a million rows, where ADD COLUMN is instant.
        batch_op.add_column(sa.Column('stage_pinned', sa.Boolean(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('dismissed_until', sa.Date(), nullable=True))
        batch_op.create_index('ix_customers_behaviour_last_order', ['behaviour', 'last_order_at', 'id'], unique=False)
        batch_op.create_index('ix_customers_lapse_at_risk', ['lapse', 'at_risk', 'id'], unique=False)
        batch_op.create_index('ix_customers_rfm_last_order', ['rfm', 'last_order_at', 'id'], unique=False)



def downgrade():
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index('ix_customers_rfm_last_order')
        batch_op.drop_index('ix_customers_lapse_at_risk')
        batch_op.drop_index('ix_customers_behaviour_last_order')
        batch_op.drop_column('dismissed_until')
        batch_op.drop_column('stage_pinned')
        batch_op.drop_column('at_risk')
        batch_op.drop_column('lapse')
        batch_op.drop_column('behaviour')
        batch_op.drop_column('rfm')
        batch_op.drop_column('m_score')
        batch_op.drop_column('f_score')
        batch_op.drop_column('r_score')

    op.drop_table('segments')
    op.drop_table('team_settings')
    op.drop_table('rfm_cells')
