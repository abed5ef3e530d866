"""Every long operation, once: generators of typed events with cooperative cancel, driven by CLI and GUI."""
