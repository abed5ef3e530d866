"""The Knowledge Index: reference corpora (import, chunking, FTS5 search), the judge, KI per step."""
