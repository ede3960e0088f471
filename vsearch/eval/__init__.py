"""Evaluation: retrieval metrics (pure functions of a similarity matrix) and evaluation runs."""
