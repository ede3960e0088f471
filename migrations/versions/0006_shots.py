"""Segments that follow the footage: each video's cut times, and the store's segmenter.

``videos.cuts`` holds the cut times (seconds, JSON list) a ``shots`` store planned the video's
segments from; NULL for a video cut into fixed windows. The meta key ``segmenter`` says how the
store cuts videos ("shots" or "fixed"). Stores from before this revision cut fixed windows, so
they are recorded as ``fixed`` (a new store's meta is written when it is created).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("videos") as batch:
        batch.add_column(sa.Column("cuts", sa.JSON(), nullable=True))
    # Only a store that already has settings (an existing one): a new store writes its own.
    op.execute(
        "INSERT INTO meta (key, value) SELECT 'segmenter', 'fixed' "
        "WHERE EXISTS (SELECT 1 FROM meta WHERE key = 'generation') "
        "AND NOT EXISTS (SELECT 1 FROM meta WHERE key = 'segmenter')"
    )


def downgrade() -> None:
    op.execute("DELETE FROM meta WHERE key = 'segmenter'")
    with op.batch_alter_table("videos") as batch:
        batch.drop_column("cuts")
