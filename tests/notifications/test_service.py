"""notifications.service: set-based writes deduplicated per user, newest-first
lists with a validated cursor, unread counts, marking read only one's own."""
import pytest

from app.errors import InvalidValue, NotFound
from app.follows.service import follower_ids
from app.notifications import service
from tests.notifications.conftest import notifications_of


def test_notify_many_writes_one_row_per_selected_user_and_a_repeat_writes_none(followed):
    creator, fans = followed(3)
    first = service.notify_many(follower_ids(creator.id), "live", "C is live: x", "/streams/9", "live:test-a")
    assert first == {fan.id: 1 for fan in fans}
    again = service.notify_many(follower_ids(creator.id), "live", "C is live: x", "/streams/9", "live:test-a")
    assert again == {}, "a repeated event must change nothing and push nothing"
    for fan in fans:
        [row] = notifications_of(fan.id)
        assert (row.type, row.text, row.url, row.read_at) == ("live", "C is live: x", "/streams/9", None)
    assert notifications_of(creator.id) == []


def test_notify_many_returns_each_users_new_unread_count(followed, notify):
    creator, [fan_a, fan_b] = followed(2)
    notify(fan_a)
    notify(fan_a)
    counts = service.notify_many(follower_ids(creator.id), "live", "t", "/streams/1", "live:counts")
    assert counts == {fan_a.id: 3, fan_b.id: 1}


def test_overlong_text_is_cut_to_the_column_not_refused(make_fan, notify):
    fan = make_fan()
    notify(fan, text="x" * 1000)
    [row] = notifications_of(fan.id)
    assert len(row.text) == service.TEXT_MAX and row.text.endswith("…")


def test_list_is_newest_first_and_pages_with_before(make_fan, notify):
    fan = make_fan()
    ids = [notify(fan, text=f"n{i}") for i in range(5)]
    assert [n.id for n in service.list_for(fan.id)] == ids[::-1]
    assert [n.id for n in service.list_for(fan.id, before=ids[3], limit=2)] == [ids[2], ids[1]]
    assert [n.id for n in service.list_for(fan.id, before=str(ids[1]))] == [ids[0]]


def test_list_shows_only_the_users_own(make_fan, notify):
    fan, other = make_fan(), make_fan()
    notify(other)
    assert service.list_for(fan.id) == []


@pytest.mark.parametrize("before", ["abc", "-1", "0", "1.5", "٣", "１２", "9" * 40, True, 0, -5, [], {}])
def test_a_before_that_is_no_id_is_invalid(make_fan, before):
    with pytest.raises(InvalidValue) as err:
        service.list_for(make_fan().id, before=before)
    assert err.value.field == "before"


@pytest.mark.parametrize("limit", ["0", "101", "x", 0, 1000, False])
def test_a_limit_out_of_range_is_invalid(make_fan, limit):
    with pytest.raises(InvalidValue) as err:
        service.list_for(make_fan().id, limit=limit)
    assert err.value.field == "limit"


def test_mark_read_without_ids_marks_all_of_the_users_own_only(make_fan, notify):
    fan, other = make_fan(), make_fan()
    notify(fan)
    notify(fan)
    notify(other)
    assert service.unread_count(fan.id) == 2
    assert service.mark_read(fan) == 0
    assert all(n.read_at is not None for n in notifications_of(fan.id))
    assert service.unread_count(other.id) == 1, "someone else's notifications were marked"


def test_mark_read_with_ids_ignores_other_peoples_and_unknown_ids(make_fan, notify):
    fan, other = make_fan(), make_fan()
    mine = [notify(fan), notify(fan)]
    theirs = notify(other)
    assert service.mark_read(fan, [mine[0], theirs, 2**63 - 1]) == 1
    assert [n.read_at is not None for n in notifications_of(fan.id)] == [True, False]
    assert service.unread_count(other.id) == 1
    assert service.mark_read(fan, []) == 1, "an empty list marks nothing"


@pytest.mark.parametrize("ids", ["1", 1, {"a": 1}, [True], [0], [-1], [1.0], ["1"], [None], [2**63],
                                 [1] * (service.MARK_READ_MAX_IDS + 1)])
def test_mark_read_refuses_ids_that_are_not_a_list_of_ids(make_fan, notify, ids):
    fan = make_fan()
    notify(fan)
    with pytest.raises(InvalidValue) as err:
        service.mark_read(fan, ids)
    assert err.value.field == "ids"
    assert service.unread_count(fan.id) == 1


def test_open_marks_read_and_gives_the_url_but_not_for_someone_else(make_fan, notify):
    fan, other = make_fan(), make_fan()
    nid = notify(fan, url="/streams/42")
    with pytest.raises(NotFound):
        service.open_notification(other, nid)
    assert service.unread_count(fan.id) == 1
    assert service.open_notification(fan, nid) == "/streams/42"
    assert service.unread_count(fan.id) == 0


def test_open_never_redirects_off_site(make_fan, notify):
    fan = make_fan()
    nid = notify(fan, url="//evil.example/x")
    assert service.open_notification(fan, nid) == "/notifications"
