"""Tagging: the multi-layer matrix (value ladder x orientation x stage) and the paper's tags."""
