"""Recording time of each video, for ``--after`` / ``--before`` filters.

The container's ``creation_time`` when it has one (cameras and phones write it), else the
file's modification time. Old stores get the modification time they already recorded; a
``vsearch index`` run with nothing changed does not re-probe files, so `reindex`-free stores
keep that until a file changes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("videos") as batch:
        batch.add_column(sa.Column("recorded_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("recorded_from", sa.String(16), nullable=True))
    op.execute("UPDATE videos SET recorded_at = mtime_ns / 1e9, recorded_from = 'mtime' WHERE recorded_at IS NULL")
    op.create_index("ix_videos_recorded_at", "videos", ["recorded_at"])
    op.create_index("ix_videos_duration", "videos", ["duration"])


def downgrade() -> None:
    op.drop_index("ix_videos_duration", "videos")
    op.drop_index("ix_videos_recorded_at", "videos")
    with op.batch_alter_table("videos") as batch:
        batch.drop_column("recorded_from")
        batch.drop_column("recorded_at")
