"""KIIG Desktop: how local language models reason, step by step, offline.

The core (everything outside ``gui/``) never imports Qt; only ``engine/`` imports llama_cpp. The
packages and their layers are described in docs/architecture.md (tests/project/test_architecture.py keeps
them so); the numbers in docs/metrics.md, the command line in docs/cli.md.
"""

__version__ = "0.1.0"

from .errors import KiigError  # noqa: E402

__all__ = ["KiigError", "__version__"]
