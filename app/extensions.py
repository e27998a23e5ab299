"""Extension singletons, bound to an app by `create_app` with `init_app`."""
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sock import Sock
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData

# Stable constraint names so Alembic migrations can refer to them.
naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# expire_on_commit=False: a request that commits then renders what it just wrote
# (the tip it sent, the purchase it made) must not re-SELECT every row; sessions
# live for one request, so nothing stays stale beyond it.
db = SQLAlchemy(metadata=MetaData(naming_convention=naming_convention),
                session_options={"expire_on_commit": False})


def driver_connection():
    """The request session's psycopg connection, inside its current transaction.

    For the hottest statements only (a ledger transfer, a tip): measured,
    SQLAlchemy's execution layer costs more Python CPU per statement than the
    statement costs PostgreSQL. Whatever runs here commits or rolls back with
    the session.
    """
    return db.session.connection().connection.driver_connection
migrate = Migrate()
login_manager = LoginManager()
sock = Sock()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address)
