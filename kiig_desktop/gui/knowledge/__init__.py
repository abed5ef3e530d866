"""The Knowledge screens: reference corpora and the Knowledge Index panel."""
