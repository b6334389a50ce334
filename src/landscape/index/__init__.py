"""Metadata index of a media store (scan, extract, classify, store) — arriving with the indexing issue."""
