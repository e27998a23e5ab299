"""JSON API: PUT /api/creator/tip-menu {items:[{label, priceTokens}]} → {items} and
GET /api/creators/:id/tip-menu → {items} (public) (DESIGN.md §12)."""
from flask import Blueprint, jsonify, request
from flask_login import current_user

from app.http import public
from app.tipmenu import service
from app.validation import json_body

bp = Blueprint("tipmenu_api", __name__, url_prefix="/api")


@bp.put("/creator/tip-menu")
def replace():
    items = service.replace_menu(current_user, json_body(request).get("items"))
    return jsonify(items=[item.to_dict() for item in items])


@bp.get("/creators/<int:creator_id>/tip-menu")
@public
def menu(creator_id):
    return jsonify(items=[item.to_dict() for item in service.public_menu(creator_id)])
