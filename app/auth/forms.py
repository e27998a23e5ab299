"""Sign-up and log-in forms. Fields and labels only: the rules live in
`auth.service` so the form and the API cannot drift apart."""
from wtforms import EmailField, Form, PasswordField, RadioField, StringField

from app.auth.service import DISPLAY_NAME_MAX, PASSWORD_MAX, PASSWORD_MIN


class SignupForm(Form):
    displayName = StringField("Display name", render_kw={"maxlength": DISPLAY_NAME_MAX, "autocomplete": "nickname"})
    email = EmailField("Email", render_kw={"maxlength": 254, "autocomplete": "email"})
    password = PasswordField("Password", render_kw={"minlength": PASSWORD_MIN, "maxlength": PASSWORD_MAX,
                                                    "autocomplete": "new-password"})
    role = RadioField("I am a", choices=[("fan", "Fan — I want to watch and tip"),
                                         ("creator", "Creator — I want to stream and earn")], default="fan")


class LoginForm(Form):
    email = EmailField("Email", render_kw={"maxlength": 254, "autocomplete": "email"})
    password = PasswordField("Password", render_kw={"maxlength": PASSWORD_MAX, "autocomplete": "current-password"})


class PasswordForm(Form):
    currentPassword = PasswordField("Current password", render_kw={"maxlength": PASSWORD_MAX,
                                                                   "autocomplete": "current-password"})
    newPassword = PasswordField("New password", render_kw={"minlength": PASSWORD_MIN, "maxlength": PASSWORD_MAX,
                                                           "autocomplete": "new-password"})


def apply_errors(form: Form, errors: dict) -> None:
    """Attach service errors (`{field: message}`) to the form's fields."""
    for name, message in errors.items():
        field = getattr(form, name, None)
        if field is not None:
            field.errors = [message]
    form.form_errors = [m for n, m in errors.items() if not hasattr(form, n)]
