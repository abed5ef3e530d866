"""Clinician review screens: the review panel beside Results, the review summary on the Dashboard."""
