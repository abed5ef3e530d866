"""The Sessions screen: open, export and import session files."""
