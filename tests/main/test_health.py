def test_healthz_reports_db_and_redis_ok(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.get_json() == {"db": "ok", "redis": "ok"}


def test_healthz_names_redis_when_it_is_down(services, make_app):
    """A dead Redis makes /healthz answer 503 naming it, without hanging."""
    app = make_app((services[0], "redis://127.0.0.1:1/0"))
    resp = app.test_client().get("/healthz")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["db"] == "ok" and body["redis"] == "down"
    assert body["code"] == "service_unavailable" and "redis" in body["error"]
