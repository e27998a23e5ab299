"""Pages: /signup, /login, /logout, /account."""
from flask import Blueprint, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from app.auth import service
from app.auth.forms import LoginForm, SignupForm, apply_errors
from app.auth.limits import login_limits, signup_limits
from app.errors import AppError
from app.http import redirect_to, render

bp = Blueprint("auth", __name__)


def _next_url() -> str:
    target = request.args.get("next") or request.form.get("next") or ""
    # Only same-site paths: never an open redirect. Control characters and
    # whitespace are refused too: URL parsers (browsers, urllib, werkzeug)
    # drop tab/CR/LF, so "/\t/evil.com" would turn into "//evil.com", and a
    # newline cannot go into a Location header at all.
    if (target.startswith("/") and not target.startswith("//") and "\\" not in target
            and target.isprintable() and not any(c.isspace() for c in target)):
        return target
    return url_for("wallet.wallet")


@bp.route("/signup", methods=["GET", "POST"])
@signup_limits
def signup():
    form = SignupForm(request.form)
    if request.method == "POST":
        try:
            user = service.register(form.email.data, form.password.data, form.displayName.data, form.role.data)
        except AppError as err:
            apply_errors(form, err.extra.get("errors") or {err.field or "_": err.message})
            return render("auth/signup.html", "auth/_signup_form.html", err.status, form=form)
        login_user(user)
        return redirect_to(_next_url())
    return render("auth/signup.html", "auth/_signup_form.html", form=form)


@bp.route("/login", methods=["GET", "POST"])
@login_limits
def login():
    form = LoginForm(request.form)
    if request.method == "POST":
        try:
            user = service.authenticate(form.email.data, form.password.data)
        except AppError as err:
            form.form_errors = [err.message]
            return render("auth/login.html", "auth/_login_form.html", err.status, form=form)
        login_user(user)
        return redirect_to(_next_url())
    return render("auth/login.html", "auth/_login_form.html", form=form)


@bp.post("/logout")
def logout():
    logout_user()
    return redirect_to(url_for("main.discover"))


@bp.get("/account")
@login_required
def account():
    return render_template("auth/account.html")


@bp.post("/account/become-creator")
@login_required
def become_creator():
    service.become_creator(current_user)
    return redirect_to(url_for("auth.account"))
