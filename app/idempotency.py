"""Request idempotency: one key, one outcome.

A money-moving request carries a client key (HTMX forms: a hidden UUID
rendered with the form; API clients: the `Idempotency-Key` header). The
service calls `claim()` inside its transaction *before* doing any work:

* first use → the key row is inserted (uncommitted), reserving the id of the
  resource the request will create (from that resource's own sequence), and
  the caller proceeds; concurrent requests with the same key block on the
  unique index until this transaction ends;
* the key was already used with the same parameters → the caller gets the id
  of the resource the first request created and returns that, moving nothing;
* same key, different parameters (or another kind of request) → `Conflict`.

If the work fails (say, insufficient funds) the transaction rolls back and
takes the claim with it, so a retry after topping up can succeed.

The rule itself is the database function `idempotency_claim`
(app/ledger/sql/functions/idempotency_claim.sql), so a request whose claim and
transfer are one statement (`ledger.transfer_for_request`: a tip) claims
exactly the way `claim()` does.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.errors import Conflict
from app.extensions import db


class IdempotencyKey(db.Model):
    __tablename__ = "idempotency_keys"

    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    scope: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


@dataclass(frozen=True)
class Claim:
    user_id: int
    key: str
    fresh: bool
    resource_id: int | None


def fingerprint(scope: str, params: dict) -> str:
    return hashlib.sha256(json.dumps([scope, params], sort_keys=True).encode()).hexdigest()


def claim(user_id: int, key: str, scope: str, params: dict, id_sequence: str | None) -> Claim:
    """Claim `key` for this request or find the request that already used it.

    A fresh claim reserves `resource_id` from `id_sequence` (e.g. `tips_id_seq`):
    the caller creates its row with that id, in the same transaction, so the
    key and the resource are written once each. A request that creates no row
    of its own (an operator's refund) passes None: `resource_id` is None. Raises `Conflict`
    (idempotency_key_reused) when the key was used with other parameters.
    """
    fresh, resource_id, conflict = db.session.execute(
        text("SELECT o_fresh, o_resource_id, o_conflict FROM idempotency_claim(:u, :k, :s, :f, CAST(:seq AS regclass))"),
        {"u": user_id, "k": key, "s": scope, "f": fingerprint(scope, params), "seq": id_sequence},
    ).one()
    if conflict:
        raise key_reused()
    return Claim(user_id, key, fresh=fresh, resource_id=resource_id)


def key_reused() -> Conflict:
    return Conflict("This idempotency key was already used for a different request.", "idempotency_key_reused")
