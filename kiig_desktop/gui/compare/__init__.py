"""The Compare screen: one question through several models, overlaid."""
