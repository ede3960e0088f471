"""Alembic environment and revisions of the store schema (installed as ``vsearch_migrations``)."""
