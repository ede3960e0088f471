"""vsearch: search folders of video by text."""

__version__ = "0.1.0"
