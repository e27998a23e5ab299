"""`ledger.creator_payment`: the one shape of "pay a creator, the platform takes its share"
(a tip, a call block, a show's settlement)."""
import pytest

from app import ledger


@pytest.fixture()
def accounts(make_fan, make_creator):
    fan, creator = make_fan(), make_creator()
    return ledger.account_for(fan.id, "wallet"), ledger.account_for(creator.id, "earnings")


@pytest.mark.parametrize("amount", [1, 2, 5, 99, 100, 1001])
def test_the_payer_pays_the_amount_the_creator_and_platform_get_split_s_shares(accounts, amount):
    wallet, earnings = accounts
    payment = ledger.creator_payment(wallet, earnings, amount)
    creator_share, platform_share = ledger.split(amount)
    assert (payment.creator_share, payment.platform_share) == (creator_share, platform_share)
    moved = {leg.account: leg.amount for leg in payment.legs}
    assert moved[wallet] == -amount and sum(moved.values()) == 0
    assert moved.get(earnings, 0) == creator_share
    assert moved.get(ledger.system_account("platform_fees"), 0) == platform_share


def test_a_share_of_nothing_gets_no_leg(accounts):
    """A 1-token payment is all the platform's: two legs, none of 0 tokens (entries are never 0)."""
    wallet, earnings = accounts
    payment = ledger.creator_payment(wallet, earnings, 1)
    assert [(leg.account, leg.amount) for leg in payment.legs] == [
        (wallet, -1), (ledger.system_account("platform_fees"), 1)]
    everything = ledger.creator_payment(wallet, earnings, 10, share_percent=100)
    assert [(leg.account, leg.amount) for leg in everything.legs] == [(wallet, -10), (earnings, 10)]


def test_the_share_can_be_given(accounts):
    """The meter reads the share once per batch and passes it."""
    wallet, earnings = accounts
    payment = ledger.creator_payment(wallet, earnings, 100, share_percent=70)
    assert (payment.creator_share, payment.platform_share) == (70, 30)
