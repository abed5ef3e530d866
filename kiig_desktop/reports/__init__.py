"""Batch summaries, bootstrap statistics, the HTML report and its SVG charts (no Qt)."""
