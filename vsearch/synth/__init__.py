"""Made-up inputs: procedural captioned clips (``scenes``) and hostile video files (``corrupt``).

Nothing here reads a user's data. Tests, demos, benchmarks and the synthetic training stream
draw on it; the readers of real datasets live in ``vsearch.datasets``.
"""
