"""Frozen-app entry of ``kiig-desktop``; ``--engine-worker`` runs the model worker, ``--self-test`` checks the bundle."""

import sys

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--engine-worker":
        from kiig_desktop.engine.worker import main as worker_main

        worker_main(sys.argv[2:])
        sys.exit(0)
    from kiig_desktop.gui.app import main

    sys.exit(main())
