from flask import current_app

from app.extensions import limiter
from app.wallet.limits import user_key


def tip_limit(view):
    """Per user, shared by the tip form and the API."""
    return limiter.shared_limit(lambda: current_app.config["TIP_LIMIT_PER_USER"], scope="tips",
                                key_func=user_key, methods=["POST"])(view)
