"""``python -m kiig_desktop`` runs the command line."""

from .cli import main

raise SystemExit(main())
