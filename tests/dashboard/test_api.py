"""JSON and CSV twins: who may see what, bad input, exports."""
from __future__ import annotations

import csv
import io
import types
import uuid

import pytest

from app.dashboard import export, service
from app.errors import Forbidden
from app.extensions import db
from app.tips import service as tips


def tip(fan, creator, amount):
    tips.send_tip(fan, creator.id, amount, "", None, f"api-{uuid.uuid4()}", confirmed=True)


def test_a_creator_sees_only_their_own_earnings(client, ctx, make_fan, make_creator, api_headers):
    me, other, fan = make_creator(), make_creator(), make_fan(balance=1000)
    tip(fan, me, 100)
    tip(fan, other, 300)
    body = client.get("/api/creator/earnings?range=today", headers=api_headers(me)).get_json()
    assert body == {"range": "today", "total": 80, "bySource": {"tips": 80, "tickets": 0, "calls": 0},
                    "pendingEscrow": 0}
    assert [f.total for f in service.top_fans(me, "all")] == [80]
    csv_text = client.get("/api/creator/earnings/export?range=all", headers=api_headers(me)).get_data(as_text=True)
    assert len(list(csv.reader(io.StringIO(csv_text)))) == 2  # header + my one tip, not the other creator's


def test_a_fan_sees_only_their_own_spending(client, ctx, make_fan, make_creator, api_headers):
    creator, me, other = make_creator(name="Ann"), make_fan(balance=1000), make_fan(balance=1000)
    tip(me, creator, 10)
    tip(other, creator, 500)
    body = client.get("/api/fan/spending?range=30d", headers=api_headers(me)).get_json()
    assert body == {"range": "30d", "total": 10, "byType": {"tips": 10, "tickets": 0, "calls": 0},
                    "byCreator": [{"creatorId": creator.id, "displayName": "Ann", "total": 10}]}


def test_earnings_are_forbidden_to_fans(client, ctx, make_fan, api_headers):
    fan = make_fan()
    for path in ("/api/creator/earnings", "/api/creator/earnings/export?range=all"):
        resp = client.get(path, headers=api_headers(fan))
        assert resp.status_code == 403
        assert resp.get_json()["code"] == "not_a_creator"


def test_the_platform_view_is_for_operators_only(ctx, make_fan, make_creator):
    for user in (make_fan(), make_creator()):
        with pytest.raises(Forbidden) as err:
            service.platform_overview(user, "30d")
        assert err.value.code == "not_an_operator"
    operator = make_fan()
    operator.is_operator = True
    db.session.commit()
    assert service.platform_overview(operator, "7d").range == "7d"


@pytest.mark.parametrize("path", ["/api/creator/earnings", "/api/creator/earnings/export",
                                  "/api/fan/spending", "/api/fan/spending/export"])
def test_unauthenticated_is_401(client, path):
    assert client.get(path + "?range=7d").status_code == 401
    resp = client.get(path, headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401 and resp.get_json()["code"] == "invalid_token"


@pytest.mark.parametrize("query", ["range=1", "range=year", "range=TODAY", "range=" + "7d" * 5000,
                                   "range=%3Cscript%3Ealert(1)%3C/script%3E", "range=7d&range=30d",
                                   "range=30d%20", "range[]=7d&range=x"])
@pytest.mark.parametrize("path", ["/api/creator/earnings", "/api/creator/earnings/export",
                                  "/api/fan/spending", "/api/fan/spending/export"])
def test_a_bad_range_is_422_never_500(client, ctx, make_creator, api_headers, path, query):
    resp = client.get(f"{path}?{query}", headers=api_headers(make_creator()))
    assert resp.status_code == 422, resp.get_data(as_text=True)[:200]
    body = resp.get_json()
    assert body["code"] == "invalid_range" and body["field"] == "range" and "<script>" not in body["error"]


@pytest.mark.parametrize("path", ["/api/creator/earnings", "/api/creator/earnings/export",
                                  "/api/fan/spending", "/api/fan/spending/export"])
def test_a_nul_byte_in_the_query_is_400_invalid_text(client, ctx, make_creator, api_headers, path):
    resp = client.get(f"{path}?range=%00", headers=api_headers(make_creator()))
    assert resp.status_code == 400 and resp.get_json()["code"] == "invalid_text", resp.get_data(as_text=True)


def test_no_range_means_30_days(client, ctx, make_creator, api_headers):
    assert client.get("/api/creator/earnings", headers=api_headers(make_creator())).get_json()["range"] == "30d"


@pytest.mark.parametrize("value", [None, "", 7, ["7d"], "x" * 10_000])
def test_parse_range(value):
    if value in (None, ""):
        assert service.parse_range(value) == "30d"
    else:
        with pytest.raises(Exception) as err:
            service.parse_range(value)
        assert err.value.status == 422


def test_earnings_csv_matches_the_entries_and_defuses_hostile_names(client, ctx, make_fan, make_creator,
                                                                     api_headers):
    creator = make_creator()
    evil = make_fan(balance=1000, name="=cmd|' /C calc'!A0")
    script = make_fan(balance=1000, name="<script>alert(1)</script>")
    plus = make_fan(balance=1000, name="+SUM(1,2)")
    tip(evil, creator, 100)
    tip(script, creator, 10)
    tip(plus, creator, 7)
    resp = client.get("/api/creator/earnings/export?range=all", headers=api_headers(creator))
    assert resp.status_code == 200
    assert resp.mimetype == "text/csv"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="earnings-all.csv"'
    assert resp.is_streamed
    rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True))))
    assert rows[0] == ["date", "source", "fan", "gross", "creator_share", "platform_fee", "reference"]
    body = rows[1:]
    assert [r[2] for r in body] == ["'=cmd|' /C calc'!A0", "<script>alert(1)</script>", "'+SUM(1,2)"]
    assert [(r[1], int(r[3]), int(r[4]), int(r[5])) for r in body] == [
        ("tips", 100, 80, 20), ("tips", 10, 8, 2), ("tips", 7, 5, 2)]
    assert all(r[6].startswith("tip:") for r in body)
    assert all(r[0].endswith("Z") for r in body)


def test_spending_csv_lists_each_payment(client, ctx, make_fan, make_creator, api_headers):
    creator = make_creator(name="@home")
    fan = make_fan(balance=1000)
    tip(fan, creator, 30)
    tip(fan, creator, 12)
    resp = client.get("/api/fan/spending/export?range=7d", headers=api_headers(fan))
    assert resp.status_code == 200 and resp.is_streamed
    rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True))))
    assert rows[0] == ["date", "type", "creator", "amount", "reference"]
    assert [(r[1], r[2], int(r[3])) for r in rows[1:]] == [("tips", "'@home", 30), ("tips", "'@home", 12)]


def test_the_export_is_a_generator_reading_a_server_side_cursor(ctx, make_fan, make_creator):
    creator, fan = make_creator(), make_fan(balance=10_000)
    for _ in range(3):
        tip(fan, creator, 10)
    chunks = service.export_earnings_csv(creator, "all")
    assert isinstance(chunks, types.GeneratorType)
    text_ = "".join(chunks)
    assert text_.count("\r\n") == 4


def test_csv_safe():
    assert export.csv_safe("=1+1") == "'=1+1"
    assert export.csv_safe("-2") == "'-2"
    assert export.csv_safe("\t=x") == "'\t=x"
    assert export.csv_safe("Ann") == "Ann"
    assert export.csv_safe(None) == ""
