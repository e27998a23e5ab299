"""Payouts: creators take their earnings out to a Stripe Connect account (DESIGN.md §11)."""
