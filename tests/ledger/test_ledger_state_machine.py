"""Random purchases, spends and replays; after every step `verify()` is clean
and every wallet matches a simple model."""
import uuid

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

from app import ledger
from app.auth import service as auth
from app.errors import Conflict, InsufficientFunds, InvalidValue
from app.extensions import db
from app.wallet import service as wallet

AMOUNTS = st.integers(min_value=1, max_value=100_000)
BAD_AMOUNTS = st.one_of(st.integers(max_value=0), st.integers(min_value=100_001), st.floats(allow_nan=True),
                        st.text(max_size=20), st.none(), st.booleans())


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self, app):
        super().__init__()
        self.ctx = app.app_context()
        self.ctx.push()
        self.balances: dict[int, int] = {}
        self.keys: list[tuple[int, str, int, int]] = []  # (user_id, key, amount, balance after)

    @initialize()
    def people(self):
        run = uuid.uuid4().hex[:8]
        self.fans = [auth.register(f"hyp-{run}-{i}@example.com", "pw-12345678", f"Fan {i}", "fan").id
                     for i in range(3)]
        self.creator = auth.register(f"hyp-{run}-c@example.com", "pw-12345678", "Creator", "creator").id
        self.balances = {f: 0 for f in self.fans}

    def teardown(self):
        db.session.remove()
        self.ctx.pop()

    def _user(self, user_id):
        from app.auth.models import User
        return db.session.get(User, user_id)

    @rule(i=st.integers(0, 2), amount=AMOUNTS)
    def purchase(self, i, amount):
        fan = self.fans[i]
        key = str(uuid.uuid4())
        result = wallet.purchase_tokens(self._user(fan), amount, key)
        self.balances[fan] += amount
        assert result.new_balance == self.balances[fan] and not result.replayed
        self.keys.append((fan, key, amount, result.new_balance))

    @precondition(lambda self: self.keys)
    @rule(data=st.data())
    def replay(self, data):
        fan, key, amount, balance_after = data.draw(st.sampled_from(self.keys))
        result = wallet.purchase_tokens(self._user(fan), amount, key)
        assert result.replayed and result.new_balance == balance_after

    @precondition(lambda self: self.keys)
    @rule(data=st.data(), delta=st.integers(1, 1000))
    def replay_with_other_amount(self, data, delta):
        fan, key, amount, _ = data.draw(st.sampled_from(self.keys))
        try:
            wallet.purchase_tokens(self._user(fan), amount + delta, key)
            raise AssertionError("reusing a key with another amount must conflict")
        except Conflict:
            db.session.rollback()

    @rule(i=st.integers(0, 2), amount=BAD_AMOUNTS)
    def bad_purchase_amount(self, i, amount):
        try:
            wallet.purchase_amount(amount)
            raise AssertionError(f"{amount!r} must be refused")
        except InvalidValue:
            pass

    @rule(i=st.integers(0, 2), amount=st.integers(1, 5000))
    def spend(self, i, amount):
        fan = self.fans[i]
        creator_share, platform_share = ledger.split(amount)
        legs = [ledger.Leg(ledger.account_for(fan, "wallet"), -amount),
                ledger.Leg(ledger.account_for(self.creator, "earnings"), creator_share),
                ledger.Leg(ledger.system_account("platform_fees"), platform_share)]
        legs = [leg for leg in legs if leg.amount]  # a 1-token tip has no creator share
        try:
            ledger.transfer("tip", f"hyp:{uuid.uuid4()}", legs)
            db.session.commit()
            assert self.balances[fan] >= amount
            self.balances[fan] -= amount
        except InsufficientFunds as err:
            db.session.rollback()
            assert self.balances[fan] < amount and err.required == amount - self.balances[fan]

    @invariant()
    def books_balance(self):
        if not self.balances:
            return
        assert ledger.verify() == []
        for fan, expected in self.balances.items():
            assert ledger.balance_of(ledger.account_for(fan, "wallet")) == expected


def test_ledger_invariants_hold_under_random_operations(app):
    run_state_machine_as_test(
        lambda: LedgerMachine(app),
        settings=settings(max_examples=25, stateful_step_count=25, deadline=None,
                          suppress_health_check=list(HealthCheck)),
    )
