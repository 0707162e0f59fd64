"""Figures and human-readable summaries of run folders."""
