"""Which transfer kinds make each source a dashboard shows: tips, tickets, calls.

Every figure that names a source reads it from here; the SQL that picks out
one kind (a show's settlement, a call's blocks) is in `queries.py`.
"""
from __future__ import annotations

from app.ledger import TransferKind as K

SOURCES = ("tips", "tickets", "calls")
# Which transfer kinds make each source: on a creator's earnings account ...
EARNING_KINDS = {K.TIP: "tips", K.TICKET_SETTLEMENT: "tickets", K.CALL_BLOCK: "calls"}
# ... and on a fan's wallet (a refund counts against tickets).
SPENDING_KINDS = {K.TIP: "tips", K.TICKET: "tickets", K.TICKET_REFUND: "tickets", K.CALL_BLOCK: "calls"}
FEE_KINDS = EARNING_KINDS
# A fan's spending line (on the page and in the CSV): its type per transfer kind.
LINE_TYPES = {K.TIP: "tips", K.TICKET: "tickets", K.TICKET_REFUND: "refund", K.CALL_BLOCK: "calls"}
