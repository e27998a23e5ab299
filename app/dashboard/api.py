"""JSON API: /api/creator/earnings (+ CSV export), /api/fan/spending (+ CSV export).

Thin: parse the range, call one service function, answer. Errors (bad range
→ 422, not a creator → 403, no login → 401) are mapped in app/errors.py.
"""
from flask import Blueprint, Response, jsonify, request, stream_with_context
from flask_login import current_user

from app.dashboard import service
from app.errors import InvalidValue

bp = Blueprint("dashboard_api", __name__, url_prefix="/api")


def _range() -> str:
    values = request.args.getlist("range")
    if len(values) > 1:
        raise InvalidValue("Send one range: today, 7d, 30d or all.", "invalid_range", field="range")
    return service.parse_range(values[0] if values else None)


def _csv(chunks, filename: str) -> Response:
    return Response(stream_with_context(chunks), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"',
                             "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


@bp.get("/creator/earnings")
def creator_earnings():
    range_ = _range()
    service.keep_current(current_user)
    return jsonify(service.creator_earnings(current_user, range_).to_dict())


@bp.get("/creator/earnings/export")
def creator_earnings_export():
    range_ = _range()
    return _csv(service.export_earnings_csv(current_user, range_), f"earnings-{range_}.csv")


@bp.get("/fan/spending")
def fan_spending():
    return jsonify(service.fan_spending(current_user, _range()).to_dict())


@bp.get("/fan/spending/export")
def fan_spending_export():
    range_ = _range()
    return _csv(service.export_spending_csv(current_user, range_), f"spending-{range_}.csv")
