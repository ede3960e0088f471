"""Dataset readers shared by training and evaluation.

``train`` and ``eval`` both read captioned videos, MSR-VTT splits and recognition folders; the
readers live here, below both, so that neither package imports the other to get at its data.
``items`` holds the row types, ``captions`` the CSV/JSONL readers, ``msrvtt`` and
``recognition`` the standard benchmark layouts, ``clips`` the torch datasets that decode them.
"""
