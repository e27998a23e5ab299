"""Dashboards: creator earnings, fan spending, the platform view (see service.py)."""
