"""API tokens can be listed, revoked and expire (DESIGN.md §9 API_TOKEN_TTL_DAYS):
a revoked or expired token gets 401 at once, over HTTP and at the WebSocket
handshake; listing never shows a secret."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import text

from app.extensions import db
from tests.conftest import fresh_client
from tests.helpers import assert_error
from tests.realtime.helpers import handshake


def bearer(raw: str) -> dict:
    return {"Authorization": f"Bearer {raw}"}


def issue(client, user) -> str:
    resp = client.post("/api/auth/token", json={"email": user.email, "password": user.test_password})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()["token"]


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment)


def test_tokens_are_listed_with_dates_and_never_their_secret(client, make_fan):
    fan = make_fan()
    first, second = issue(client, fan), issue(client, fan)
    resp = client.get("/api/auth/tokens", headers=bearer(second))
    assert resp.status_code == 200
    tokens = resp.get_json()["tokens"]
    assert len(tokens) == 2 and tokens[0]["id"] > tokens[1]["id"]  # newest first
    for t in tokens:
        assert set(t) == {"id", "createdAt", "lastUsedAt", "expiresAt"}
        assert parse(t["expiresAt"]) - parse(t["createdAt"]) == timedelta(days=30)
    body = resp.get_data(as_text=True)
    stored = db.session.scalars(text("SELECT token_hash FROM api_tokens WHERE user_id = :u"), {"u": fan.id}).all()
    assert first not in body and second not in body and not any(h in body for h in stored)
    used, unused = tokens
    assert used["lastUsedAt"] is not None and unused["lastUsedAt"] is None


def test_listing_shows_only_the_callers_tokens(client, make_fan):
    fan, other = make_fan(), make_fan()
    mine = issue(client, fan)
    issue(client, other)
    assert len(client.get("/api/auth/tokens", headers=bearer(mine)).get_json()["tokens"]) == 1


def test_a_revoked_token_gets_401_at_once_on_http_and_on_the_websocket_handshake(client, make_fan, live_server):
    fan = make_fan()
    keep, doomed = issue(client, fan), issue(client, fan)
    doomed_id = client.get("/api/auth/tokens", headers=bearer(keep)).get_json()["tokens"][0]["id"]
    assert handshake(live_server, "/ws/me", bearer(doomed)).status == 101

    resp = client.delete(f"/api/auth/tokens/{doomed_id}", headers=bearer(keep))
    assert resp.status_code == 204 and resp.get_data() == b""

    assert_error(client.get("/api/wallet/me", headers=bearer(doomed)), 401, "invalid_token")
    hs = handshake(live_server, "/ws/me", bearer(doomed))
    assert hs.status == 401 and b"invalid_token" in hs.body
    assert client.get("/api/wallet/me", headers=bearer(keep)).status_code == 200


def test_delete_api_auth_token_revokes_the_token_in_use_only(client, make_fan):
    fan = make_fan()
    app_token, other_app = issue(client, fan), issue(client, fan)
    assert client.delete("/api/auth/token", headers=bearer(app_token)).status_code == 204
    assert_error(client.get("/api/wallet/me", headers=bearer(app_token)), 401, "invalid_token")
    assert client.get("/api/wallet/me", headers=bearer(other_app)).status_code == 200
    # Revoking it again: it is gone, so the request itself is unauthenticated.
    assert_error(client.delete("/api/auth/token", headers=bearer(app_token)), 401, "invalid_token")


def test_delete_api_auth_token_without_a_token_in_use_is_400(client, make_fan, login):
    fan = make_fan()
    csrf = login(fan)
    assert_error(client.delete("/api/auth/token", headers={"X-CSRFToken": csrf}), 400, "no_token_in_use")


def test_nobody_can_revoke_someone_elses_token(client, make_fan):
    owner, other = make_fan(), make_fan()
    owners = issue(client, owner)
    owners_id = client.get("/api/auth/tokens", headers=bearer(owners)).get_json()["tokens"][0]["id"]
    theirs = issue(client, other)
    assert_error(client.delete(f"/api/auth/tokens/{owners_id}", headers=bearer(theirs)), 404, "token_not_found")
    assert client.get("/api/wallet/me", headers=bearer(owners)).status_code == 200


def test_revoking_an_unknown_token_id_is_404(client, make_fan):
    token = issue(client, make_fan())
    for path in ("/api/auth/tokens/999999999", "/api/auth/tokens/abc"):
        assert client.delete(path, headers=bearer(token)).status_code == 404


def test_revoking_with_a_session_cookie_needs_csrf(client, make_fan, login):
    fan = make_fan()
    token = issue(client, fan)
    login(fan)
    token_id = client.get("/api/auth/tokens").get_json()["tokens"][0]["id"]
    assert_error(client.delete(f"/api/auth/tokens/{token_id}"), 400, "csrf_failed")
    assert client.get("/api/wallet/me", headers=bearer(token)).status_code == 200


def test_an_expired_token_gets_401_on_http_and_on_the_websocket_handshake(client, make_fan, live_server):
    fan = make_fan()
    token = issue(client, fan)
    db.session.execute(text("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE user_id = :u"),
                       {"u": fan.id})
    db.session.commit()
    assert_error(client.get("/api/wallet/me", headers=bearer(token)), 401, "invalid_token")
    assert handshake(live_server, "/ws/me", bearer(token)).status == 401
    listed = client.get("/api/auth/tokens", headers=bearer(issue(client, fan))).get_json()["tokens"]
    assert len(listed) == 1  # the fresh one; the expired one is not listed


def test_api_token_ttl_days_sets_the_lifetime(make_app, make_fan):
    short = fresh_client(make_app(API_TOKEN_TTL_DAYS=1))
    token = issue(short, make_fan())
    [listed] = short.get("/api/auth/tokens", headers=bearer(token)).get_json()["tokens"]
    assert parse(listed["expiresAt"]) - parse(listed["createdAt"]) == timedelta(days=1)


def test_last_used_is_written_at_most_once_a_minute(client, make_fan):
    fan = make_fan()
    token = issue(client, fan)
    client.get("/api/wallet/me", headers=bearer(token))
    db.session.execute(text("UPDATE api_tokens SET last_used_at = now() - interval '30 seconds' "
                            "WHERE user_id = :u"), {"u": fan.id})
    db.session.commit()
    client.get("/api/wallet/me", headers=bearer(token))
    age = lambda: db.session.scalar(text(  # noqa: E731
        "SELECT extract(epoch FROM now() - last_used_at) FROM api_tokens WHERE user_id = :u"), {"u": fan.id})
    assert age() >= 29
    db.session.execute(text("UPDATE api_tokens SET last_used_at = now() - interval '2 minutes' "
                            "WHERE user_id = :u"), {"u": fan.id})
    db.session.commit()
    client.get("/api/wallet/me", headers=bearer(token))
    db.session.commit()
    assert age() < 10


def test_the_account_page_lists_tokens_and_revokes_one_in_place(client, make_fan, login):
    fan = make_fan()
    token = issue(client, fan)
    login(fan)
    html = client.get("/account").get_data(as_text=True)
    [token_id] = {int(i) for i in re.findall(r"/account/tokens/(\d+)/revoke", html)}
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    resp = client.post(f"/account/tokens/{token_id}/revoke", headers={"HX-Request": "true", "X-CSRFToken": csrf})
    assert resp.status_code == 200
    fragment = resp.get_data(as_text=True)
    assert 'id="access-lists"' in fragment and "No API tokens" in fragment and "<html" not in fragment
    assert_error(client.get("/api/wallet/me", headers=bearer(token)), 401, "invalid_token")


def test_revoking_a_token_closes_the_sockets_opened_with_it(client, make_fan, live_server):
    from tests.realtime.helpers import Api, Viewer
    fan = make_fan()
    doomed, keep = issue(client, fan), issue(client, fan)
    doomed_socket, kept_socket = (Viewer(Api(live_server).ws("/ws/me"), bearer(t)) for t in (doomed, keep))
    try:
        for viewer in (doomed_socket, kept_socket):
            assert viewer.receive(5) is not None
        assert client.delete("/api/auth/token", headers=bearer(doomed)).status_code == 204
        doomed_socket.collect(3)
        kept_socket.collect(1.5)
        assert doomed_socket.closed and not kept_socket.closed
    finally:
        doomed_socket.close()
        kept_socket.close()


def test_a_hundred_first_uses_at_once_all_succeed(app, make_fan, api_headers):
    """Recording last use must not need a second pooled connection per request
    (100 requests at once on a pool of 50 would wait for each other)."""
    import threading
    headers = [api_headers(make_fan()) for _ in range(100)]
    statuses, start = [], threading.Barrier(100)

    def call(h):
        client = fresh_client(app)
        start.wait()
        statuses.append(client.get("/api/wallet/me", headers=h).status_code)
    threads = [threading.Thread(target=call, args=(h,)) for h in headers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert statuses == [200] * 100
    assert db.session.scalar(text("SELECT count(*) FROM api_tokens WHERE last_used_at IS NOT NULL "
                                  "AND now() - last_used_at < interval '1 minute'")) >= 100
