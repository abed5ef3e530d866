"""Frozen-app entry of ``kiig`` (the CLI); ``kiig --engine-worker ...`` is the model worker process."""

import sys

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--engine-worker":
        from kiig_desktop.engine.worker import main as worker_main

        worker_main(sys.argv[2:])
        sys.exit(0)
    from kiig_desktop.cli import main

    sys.exit(main())
