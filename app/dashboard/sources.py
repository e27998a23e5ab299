"""Which transfer kinds make each source a dashboard shows: tips, tickets, calls.

Every figure that names a source reads it from here; the SQL that picks out
one kind (a show's settlement, a call's blocks) is in `queries.py`.
"""
from __future__ import annotations

SOURCES = ("tips", "tickets", "calls")
# Which transfer kinds make each source: on a creator's earnings account ...
EARNING_KINDS = {"tip": "tips", "ticket_settlement": "tickets", "call_block": "calls"}
# ... and on a fan's wallet (a refund counts against tickets).
SPENDING_KINDS = {"tip": "tips", "ticket": "tickets", "ticket_refund": "tickets", "call_block": "calls"}
FEE_KINDS = EARNING_KINDS
# A fan's spending line (on the page and in the CSV): its type per transfer kind.
LINE_TYPES = {"tip": "tips", "ticket": "tickets", "ticket_refund": "refund", "call_block": "calls"}
