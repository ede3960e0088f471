"""Vector index choice per encoder (flat / IVF / IVF-PQ and its parameters).

Replaces the store-wide ``meta.index_kind`` setting: each encoder's FAISS index records its own
kind and parameters (nlist, nprobe, PQ size, the recall it was tuned to).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vector_indexes",
        sa.Column("encoder_id", sa.Integer(), sa.ForeignKey("encoders.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    conn = op.get_bind()
    kind = conn.execute(sa.text("SELECT value FROM meta WHERE key = 'index_kind'")).scalar()
    enc = conn.execute(sa.text("SELECT value FROM meta WHERE key = 'encoder_id'")).scalar()
    if enc is not None:
        now = datetime.now(UTC).replace(tzinfo=None)
        conn.execute(
            sa.text("INSERT INTO vector_indexes (encoder_id, kind, params, updated_at) VALUES (:e, :k, :p, :t)"),
            {"e": int(enc), "k": kind or "flat", "p": json.dumps({}), "t": now},
        )
    conn.execute(sa.text("DELETE FROM meta WHERE key = 'index_kind'"))


def downgrade() -> None:
    conn = op.get_bind()
    kind = conn.execute(
        sa.text(
            "SELECT kind FROM vector_indexes WHERE encoder_id = (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'encoder_id')"
        )
    ).scalar()
    conn.execute(sa.text("INSERT OR REPLACE INTO meta (key, value) VALUES ('index_kind', :k)"), {"k": kind or "flat"})
    op.drop_table("vector_indexes")
