"""The Models screen: discovered models, their metadata and load options."""
