"""Pages: /signup, /login, /logout, /account (password, sessions, API tokens)."""
from flask import Blueprint, flash, render_template, request, url_for
from flask_login import current_user, login_required

from app import validation
from app.auth import service, sessions
from app.auth.forms import LoginForm, PasswordForm, SignupForm, apply_errors
from app.auth.limits import login_limits, login_succeeded, signup_limits
from app.errors import AppError, NotFound
from app.http import is_htmx, redirect_to, render

bp = Blueprint("auth", __name__)


def _next_url(user) -> str:
    """Where to go after logging in or signing up: `next` when it is a path on
    this site (never an open redirect), else home: a creator's dashboard (their
    earnings), a fan's wallet (their tokens)."""
    target = request.args.get("next") or request.form.get("next") or ""
    if validation.is_local_path(target):
        return target
    return url_for("dashboard.creator") if user.is_creator else url_for("wallet.wallet")


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
        login_succeeded()
        sessions.log_in(user)
        return redirect_to(_next_url(user))
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
        login_succeeded()
        sessions.log_in(user)
        return redirect_to(_next_url(user))
    return render("auth/login.html", "auth/_login_form.html", form=form)


@bp.post("/logout")
def logout():
    """Ends this browser's session for good: a copy of its cookie stops working too."""
    sessions.log_out()
    return redirect_to(url_for("main.discover"))


@bp.post("/account/logout-everywhere")
@login_required
def logout_everywhere():
    """Every browser session and API token of this user ends, this one included."""
    sessions.end_all(current_user)
    sessions.log_out()
    flash("You were logged out everywhere, and every API token was revoked. Log in again to continue.", "info")
    return redirect_to(url_for("auth.login"))


@bp.get("/account")
@login_required
def account():
    return render_template("auth/account.html", **_account_context())


def _account_context(**extra) -> dict:
    return {"password_form": PasswordForm(), "sessions": sessions.sessions_of(current_user),
            "current_session_id": sessions.current_session_id(), "tokens": service.tokens_of(current_user),
            **extra}


@bp.post("/account/password")
@login_required
def change_password():
    """Errors next to their field (422). Success ends every session and API
    token of the user and logs this browser in again with a new session (a
    full page load: the page's CSRF token belonged to the old one)."""
    form = PasswordForm(request.form)
    try:
        service.change_password(current_user, form.currentPassword.data, form.newPassword.data)
    except AppError as err:
        apply_errors(form, err.extra.get("errors") or {err.field or "_": err.message})
        return render("auth/account.html", "auth/_password_form.html", err.status,
                      **_account_context(password_form=form))
    sessions.log_in(current_user._get_current_object())
    flash("Password changed. Every other browser and API token was logged out.", "success")
    return redirect_to(url_for("auth.account"))


@bp.post("/account/sessions/<int:session_id>/end")
@login_required
def end_session(session_id):
    """Log out one browser from the list on /account (this one: as the Log out button)."""
    if session_id == sessions.current_session_id():
        sessions.log_out()
        return redirect_to(url_for("main.discover"))
    if not sessions.end_session(current_user, session_id):
        raise NotFound("That session has already ended.", "session_not_found")
    return _access_lists()


@bp.post("/account/tokens/<int:token_id>/revoke")
@login_required
def revoke_token(token_id):
    service.revoke_token(current_user, token_id)
    return _access_lists()


def _access_lists():
    """The sessions and tokens lists (htmx), or the account page."""
    if is_htmx():
        return render_template("auth/_access_lists.html", **_account_context())
    return redirect_to(url_for("auth.account"))


@bp.post("/account/become-creator")
@login_required
def become_creator():
    service.become_creator(current_user)
    return redirect_to(url_for("auth.account"))
