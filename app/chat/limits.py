from flask import current_app

from app.extensions import limiter
from app.wallet.limits import user_key


def chat_limit(view):
    """`CHAT_LIMIT_PER_USER`, per user over all rooms, shared by the chat form and the API."""
    return limiter.shared_limit(lambda: current_app.config["CHAT_LIMIT_PER_USER"], scope="chat",
                                key_func=user_key, methods=["POST"])(view)
