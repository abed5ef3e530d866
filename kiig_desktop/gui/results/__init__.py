"""The Results screen: one chain's curves, step table and reasoning text."""
