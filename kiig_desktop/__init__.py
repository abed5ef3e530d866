"""KIIG Desktop: how local language models reason, step by step, offline.

The core (everything outside ``gui/``) never imports Qt; only ``engine/`` imports llama_cpp.
"""

__version__ = "0.1.0"

from .errors import KiigError  # noqa: E402

__all__ = ["KiigError", "__version__"]
