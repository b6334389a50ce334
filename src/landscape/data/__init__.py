"""Datasets: layouts, safe decoding, splits, audit and the built-in synthetic landscapes."""
