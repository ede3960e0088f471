"""Video-text encoders behind one interface (``encoder.VideoTextEncoder``).

Import the submodules you need; this package itself stays light so ``vsearch models`` and
``--help`` do not import torch.
"""

from .catalog import FAMILIES, REGISTRY
from .registry import load_encoder

__all__ = ["FAMILIES", "REGISTRY", "load_encoder"]
