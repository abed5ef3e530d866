"""Reasoning chains as data: dataset items and files, final answers, step splitting, prompts."""
