"""Pieces every screen uses: theme, widgets, workers, engines, the session file, plots."""
