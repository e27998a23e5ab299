"""Fans follow creators (DESIGN.md §13)."""
