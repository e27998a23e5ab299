"""/notifications and the bell in the nav: newest first, unread marked, escaped, "Mark
all as read" over htmx, each item's link marks it read; one's own only."""
import re

from tests.helpers import visible
from tests.notifications.conftest import notifications_of

HTMX = {"HX-Request": "true"}


def _badge(html: str) -> str:
    match = re.search(r'<span id="bell-badge"[^>]*>.*?</span>\s*</a>|<span id="bell-badge"[^>]*></span>', html,
                      re.S)
    assert match, html
    return match.group(0)


def test_every_logged_in_page_has_the_bell_with_its_unread_count(client, login, make_fan, make_creator, notify):
    for user in (make_fan(), make_creator()):
        login(user)
        html = client.get("/").get_data(as_text=True)
        assert 'href="/notifications"' in html and "sr-only\">Notifications<" in html
        assert 'class="badge hidden"' in _badge(html), "no unread: the badge is hidden"
        notify(user)
        notify(user)
        badge = _badge(client.get("/wallet").get_data(as_text=True))
        assert "hidden" not in badge.split(">")[0] and "2 unread notifications" in visible(badge)
        client.post("/logout", data={"csrf_token": login(user)})


def test_the_bell_says_one_unread_notification_in_the_singular_and_caps_the_digits(client, login, make_fan,
                                                                                   notify):
    fan = make_fan()
    login(fan)
    notify(fan)
    assert "1 unread notification" in visible(_badge(client.get("/").get_data(as_text=True)))
    for _ in range(100):
        notify(fan)
    badge = _badge(client.get("/").get_data(as_text=True))
    assert '<span aria-hidden="true">99+</span>' in badge and "101 unread notifications" in visible(badge)


def test_logged_out_pages_have_no_bell(client):
    assert 'id="bell-badge"' not in client.get("/").get_data(as_text=True)


def test_page_needs_login(client):
    resp = client.get("/notifications")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_page_lists_newest_first_unread_marked_and_escaped(client, login, make_fan, notify):
    fan, other = make_fan(), make_fan()
    notify(fan, text="Old <script>alert(1)</script> is live: first")
    newest = notify(fan, text="Ann is live: second")
    notify(other, text="Not yours is live")
    login(fan)
    html = client.get("/notifications").get_data(as_text=True)
    text = visible(html)
    assert text.index("Ann is live: second") < text.index("Old <script>alert(1)</script> is live: first")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "Not yours" not in text
    assert text.count("Unread:") == 2 and "2 unread" in text
    assert f'href="/notifications/{newest}"' in html
    assert "Mark all as read" in text and 'hx-indicator="this"' in html


def test_visiting_the_page_marks_nothing_read(client, login, make_fan, notify):
    fan = make_fan()
    notify(fan)
    login(fan)
    client.get("/notifications")
    assert notifications_of(fan.id)[0].read_at is None


def test_empty_page_points_to_discover(client, login, make_fan):
    login(make_fan())
    html = client.get("/notifications").get_data(as_text=True)
    assert "No notifications yet" in visible(html) and 'href="/"' in html and "Discover creators" in html
    assert "Mark all as read" not in html


def test_mark_all_over_htmx_returns_the_list_all_read_and_a_zero_badge(client, login, make_fan, notify):
    fan = make_fan()
    notify(fan)
    notify(fan)
    token = login(fan)
    resp = client.post("/notifications/read", data={"csrf_token": token}, headers=HTMX)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and 'id="notifications"' in html and "<html" not in html
    assert "Unread:" not in html and "all caught up" in html
    assert 'id="bell-badge" hx-swap-oob="true" class="badge hidden"' in html
    assert all(n.read_at for n in notifications_of(fan.id))


def test_mark_all_without_js_redirects_back(client, login, make_fan, notify):
    fan = make_fan()
    notify(fan)
    resp = client.post("/notifications/read", data={"csrf_token": login(fan)})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/notifications")
    assert notifications_of(fan.id)[0].read_at is not None


def test_mark_all_needs_csrf(client, login, make_fan, notify):
    fan = make_fan()
    notify(fan)
    login(fan)
    assert client.post("/notifications/read", data={}).status_code == 400
    assert notifications_of(fan.id)[0].read_at is None


def test_opening_a_notification_marks_it_read_and_goes_to_its_url(client, login, make_fan, notify):
    fan = make_fan()
    nid, other = notify(fan, url="/streams/5"), notify(fan)
    login(fan)
    resp = client.get(f"/notifications/{nid}")
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/streams/5")
    assert [n.read_at is not None for n in notifications_of(fan.id)] == [True, False]
    assert other in [n.id for n in notifications_of(fan.id)]


def test_opening_someone_elses_or_an_unknown_notification_is_404(client, login, make_fan, notify):
    fan, other = make_fan(), make_fan()
    theirs = notify(other)
    login(fan)
    for path in (f"/notifications/{theirs}", "/notifications/999999999999", "/notifications/" + "9" * 40,
                 "/notifications/%D9%A3", "/notifications/-1"):
        assert client.get(path).status_code == 404, path
    assert notifications_of(other.id)[0].read_at is None


def test_a_bad_before_on_the_page_shows_the_first_page(client, login, make_fan, notify):
    fan = make_fan()
    notify(fan, text="Only one is live")
    login(fan)
    for before in ("abc", "-1", "%D9%A3", "9" * 50):
        resp = client.get(f"/notifications?before={before}")
        assert resp.status_code == 200 and "Only one is live" in visible(resp.get_data(as_text=True)), before
    assert client.get("/notifications?before=%00").status_code == 400  # NUL: refused app-wide


def test_a_full_page_links_to_older_ones(client, login, make_fan, notify):
    from app.notifications.service import PAGE_SIZE
    fan = make_fan()
    ids = [notify(fan, text=f"Show {i} is live") for i in range(PAGE_SIZE + 1)]
    login(fan)
    html = client.get("/notifications").get_data(as_text=True)
    assert "Show 0 is live" not in visible(html) and f'href="/notifications?before={ids[1]}"' in html
    older = visible(client.get(f"/notifications?before={ids[1]}").get_data(as_text=True))
    assert "Show 0 is live" in older and "Show 1 is live" not in older
