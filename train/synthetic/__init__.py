"""Procedural synthetic expression faces: the embedded default dataset (no download)."""
