from flask import current_app
from flask_login import current_user
from flask_limiter.util import get_remote_address

from app.extensions import limiter


def user_key() -> str:
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return f"ip:{get_remote_address()}"


def purchase_limit(view):
    return limiter.limit(lambda: current_app.config["PURCHASE_LIMIT_PER_USER"], key_func=user_key,
                         methods=["POST"], scope="purchase")(view)
