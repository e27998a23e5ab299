"""A tip's receipt names who was tipped and in which stream (issue 17; DESIGN.md §5 Tips, §8)."""
from __future__ import annotations

import re
import uuid

from app.tips import service as tips
from app.wallet import service as wallet
from tests.helpers import visible


def tip(fan, creator, amount, stream_id=None, call_id=None):
    context = {"streamId": stream_id} if stream_id else None
    return tips.send_tip(fan, creator.id, amount, "", context, str(uuid.uuid4()), confirmed=True).tip


def what_of(html: str) -> str:
    """The receipt's "What" line, as a person reads it."""
    return visible(re.search(r"<dt>What</dt><dd>(.*?)</dd>", html, re.S).group(1))


def test_a_tip_receipt_names_the_creator_and_links_the_stream(client, make_fan, make_creator, make_stream, login):
    creator = make_creator(name="Ada <Live> & co")
    fan = make_fan(balance=500)
    stream = make_stream(creator, title="Jazz <script>alert(1)</script>", live=True)
    sent = tip(fan, creator, 120, stream.id)
    login(fan)
    resp = client.get(f"/wallet/receipts/{sent.transfer_id}")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert what_of(html) == "Tip to Ada <Live> & co during Jazz <script>alert(1)</script>"
    assert (f'<a href="/streams/{stream.id}">Jazz &lt;script&gt;alert(1)&lt;/script&gt;</a>' in html)  # escaped
    assert "Ada &lt;Live&gt; &amp; co" in html and "<script>alert(1)" not in html
    assert "−120" in visible(html)


def test_a_tip_without_a_stream_names_the_creator_only(client, make_fan, make_creator, login):
    creator = make_creator(name="Bea Direct")
    fan = make_fan(balance=500)
    sent = tip(fan, creator, 50)
    login(fan)
    html = client.get(f"/wallet/receipts/{sent.transfer_id}").get_data(as_text=True)
    assert what_of(html) == "Tip to Bea Direct"
    assert "/streams/" not in re.search(r"<dt>What</dt><dd>(.*?)</dd>", html, re.S).group(1)


def test_the_receipt_service_finds_the_tip_by_its_transfer(make_fan, make_creator, make_stream):
    creator = make_creator(name="Cy Service")
    fan = make_fan(balance=500)
    stream = make_stream(creator, title="Morning show", live=True)
    sent = tip(fan, creator, 70, stream.id)
    found = wallet.receipt(fan, sent.transfer_id)["tip"]
    assert (found.creator_name, found.stream_id, found.stream_title) == ("Cy Service", stream.id, "Morning show")


def test_a_tip_key_that_names_another_transfer_finds_nothing(make_fan, make_creator):
    """The key's tip id must belong to that very transfer: no receipt borrows another tip's names."""
    creator = make_creator()
    fan = make_fan(balance=500)
    first, second = tip(fan, creator, 10), tip(fan, creator, 20)
    assert tips.tip_receipt(second.transfer_id, f"tip:{first.id}") is None
    assert tips.tip_receipt(first.transfer_id, "tip:abc") is None
    assert tips.tip_receipt(first.transfer_id, "purchase:1") is None
    assert tips.tip_receipt(first.transfer_id, f"tip:{first.id}").creator_name == creator.display_name


def test_a_purchase_receipt_keeps_its_reason(client, make_fan, login):
    fan = make_fan(balance=1000)
    login(fan)
    transfer_id = wallet.history(fan).items[0].transfer_id
    html = client.get(f"/wallet/receipts/{transfer_id}").get_data(as_text=True)
    assert what_of(html) == "Bought 1,000 tokens (test mode)"


def test_the_receipt_card_is_not_a_call_receipt_row(client, make_fan, login):
    """`.receipt` is a call receipt's flex row: the page's card must not carry it (it laid the
    heading, the facts and the back link side by side, 858 px wide on a phone)."""
    fan = make_fan(balance=1000)
    login(fan)
    transfer_id = wallet.history(fan).items[0].transfer_id
    html = client.get(f"/wallet/receipts/{transfer_id}").get_data(as_text=True)
    card = re.search(r'<section class="([^"]*)"[^>]*>\s*<h1', html).group(1).split()
    assert "card" in card and "receipt" not in card
    assert re.search(r'<h1[^>]*>Receipt #\d+</h1>.*<dl class="facts">.*Back to wallet</a></p>\s*</section>', html, re.S)
