"""How each video's frames were chosen: "exact" (uniform) or "fast" (nearest keyframes).

Videos indexed before the choice existed were sampled exactly.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("videos") as batch:
        batch.add_column(sa.Column("sampling", sa.String(8), nullable=True))
    op.execute("UPDATE videos SET sampling = 'exact' WHERE sampling IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("videos") as batch:
        batch.drop_column("sampling")
