"""Payments: the providers (demo, Stripe) and the Stripe webhook (DESIGN.md §11)."""
