"""Metadata index of a media store: scan, extract, classify, store (coming with its issue)."""
