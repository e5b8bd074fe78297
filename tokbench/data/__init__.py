"""Datasets (embedded, image folders), image decoding and preprocessing specs."""
