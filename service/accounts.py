"""Account pages: sign-up, e-mail confirmation, sign-in and out, password reset, tokens, data, privacy."""

from __future__ import annotations

import json

from flask import Blueprint, Flask, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response as WerkzeugResponse
from wtforms import BooleanField, EmailField, HiddenField, PasswordField
from wtforms.validators import DataRequired, Length, Regexp

from matcher.accounts import EMAIL
from matcher.app import AccountError, Actor
from service import i18n, limiter
from service.auth import User, own_path, signed_in
from service.state import partner_match

bp = Blueprint("accounts", __name__)
EMAIL_FORMAT = Regexp(EMAIL.pattern, message="Enter an e-mail address.")
Page = str | WerkzeugResponse | tuple[str, int]


class SignUpForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), EMAIL_FORMAT, Length(max=320)])
    password = PasswordField(
        _l("Password"), validators=[DataRequired(), Length(min=10, max=200)], description=_l("At least 10 characters")
    )
    consent = BooleanField(
        _l("I have read the privacy notice and agree that partner-match keeps my e-mail address to run my account"),
        validators=[DataRequired(_l("Please accept the privacy notice."))],
    )


class LoginForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), EMAIL_FORMAT, Length(max=320)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])
    next = HiddenField()


class ResetRequestForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), EMAIL_FORMAT, Length(max=320)])


class ResetForm(FlaskForm):
    password = PasswordField(
        _l("New password"),
        validators=[DataRequired(), Length(min=10, max=200)],
        description=_l("At least 10 characters"),
    )


def _form_page(form: FlaskForm, title: str, submit: str, intro: str = "", after: str = "", status: int = 200) -> Page:
    html = render_template("form.html", form=form, title=title, submit=submit, intro=intro, after=after)
    return (html, status) if status != 200 else html


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit("10/hour", methods=["POST"])
def signup() -> Page:
    form = SignUpForm()
    intro = _("An account lets you register your organisation, keep it up to date and be contacted.")
    # the words outside the f-string, so that extraction finds them (it skips f-strings)
    have, sign_in, privacy = _("Already have an account?"), _("Sign in"), _("Privacy notice")
    after = (
        f'{have} <a href="{url_for("accounts.login")}">{sign_in}</a>. '
        f'<a href="{url_for("accounts.privacy")}">{privacy}</a>.'
    )
    if request.method == "POST":
        if not form.validate_on_submit():
            return _form_page(form, _("Create an account"), _("Create account"), intro, after, 400)
        try:
            actor = partner_match().accounts.sign_up(
                form.email.data or "", form.password.data or "", bool(form.consent.data), base_url=request.url_root
            )
        except AccountError as exc:
            getattr(form, exc.field, form.email).errors = [i18n.translate(exc.message)]
            return _form_page(form, _("Create an account"), _("Create account"), intro, after, 400)
        login_user(User(actor))
        flash(_("Welcome! We have sent you an e-mail: open its link to confirm your address."))
        return redirect(url_for("accounts.account"))
    return _form_page(form, _("Create an account"), _("Create account"), intro, after)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("10/minute;50/hour", methods=["POST"])
def login() -> Page:
    form = LoginForm(next=request.args.get("next", ""))
    forgot, new_here, create = _("Forgot your password?"), _("New here?"), _("Create an account")
    after = (
        f'<a href="{url_for("accounts.reset_request")}">{forgot}</a> '
        f'{new_here} <a href="{url_for("accounts.signup")}">{create}</a>.'
    )
    if request.method == "POST":
        actor = (
            partner_match().accounts.authenticate(form.email.data or "", form.password.data or "")
            if form.validate_on_submit()
            else None
        )
        if actor is None:
            form.password.errors = [_("This e-mail and password do not match an account.")]
            return _form_page(form, _("Sign in"), _("Sign in"), after=after, status=400)
        login_user(User(actor))
        return redirect(own_path(form.next.data) or url_for("pages.index"))
    return _form_page(form, _("Sign in"), _("Sign in"), after=after)


@bp.post("/logout")
def logout() -> WerkzeugResponse:
    logout_user()
    flash(_("You are signed out."))
    return redirect(url_for("pages.index"))


@bp.get("/verify/<token>")
def verify(token: str) -> WerkzeugResponse:
    try:
        actor = partner_match().accounts.verify(token)
    except AccountError as exc:
        flash(_("Your address could not be confirmed: %(why)s.", why=i18n.translate(exc.message)))
        return redirect(url_for("pages.index"))
    login_user(User(actor))
    flash(_("Thank you: your e-mail address is confirmed."))
    return redirect(url_for("accounts.account"))


@bp.route("/reset", methods=["GET", "POST"])
@limiter.limit("5/hour", methods=["POST"])
def reset_request() -> Page:
    form = ResetRequestForm()
    if request.method == "POST" and form.validate_on_submit():
        partner_match().accounts.request_reset(form.email.data or "", base_url=request.url_root)
        flash(_("If an account has this address, a link to choose a new password is on its way."))
        return redirect(url_for("accounts.login"))
    return _form_page(
        form, _("Reset your password"), _("Send me a link"), status=400 if request.method == "POST" else 200
    )


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset(token: str) -> Page:
    form = ResetForm()
    if request.method == "POST" and form.validate_on_submit():
        try:
            actor = partner_match().accounts.reset(token, form.password.data or "")
        except AccountError as exc:
            form.password.errors = [i18n.translate(exc.message)]
            return _form_page(form, _("Choose a new password"), _("Save password"), status=400)
        login_user(User(actor))
        flash(_("Your new password is saved."))
        return redirect(url_for("accounts.account"))
    return _form_page(
        form, _("Choose a new password"), _("Save password"), status=400 if request.method == "POST" else 200
    )


@bp.get("/account")
@login_required
def account() -> str:
    return _account_page(signed_in())


def _account_page(actor: Actor, new_token: str | None = None) -> str:
    """The account page; a token just created is shown this once."""
    accounts = partner_match().accounts
    return render_template(
        "account.html",
        actor=actor,
        data=accounts.export(actor),
        tokens=accounts.tokens(actor),
        csrf_form=FlaskForm(),
        token_form=FlaskForm(),
        new_token=new_token,
    )


@bp.post("/account/tokens")
@login_required
def issue_token() -> Page:
    actor = signed_in()
    if not FlaskForm().validate_on_submit():
        abort(400, _("the form expired: reload the page"))
    try:
        token = partner_match().accounts.issue_token(actor, request.form.get("name", ""))
    except AccountError as exc:
        flash(i18n.translate(exc.message))
        return redirect(url_for("accounts.account"))
    return _account_page(actor, token)


@bp.post("/account/tokens/<int:token_id>/revoke")
@login_required
def revoke_token(token_id: int) -> WerkzeugResponse:
    actor = signed_in()
    if not FlaskForm().validate_on_submit():
        abort(400, _("the form expired: reload the page"))
    try:
        partner_match().accounts.revoke_token(actor, token_id)
    except AccountError as exc:
        abort(exc.status, i18n.translate(exc.message))
    flash(_("The token is revoked."))
    return redirect(url_for("accounts.account"))


@bp.get("/account/data.json")
@login_required
def export() -> Response:
    actor = signed_in()
    body = json.dumps(partner_match().accounts.export(actor), indent=2, ensure_ascii=False)
    response = Response(body, mimetype="application/json")
    response.headers["Content-Disposition"] = 'attachment; filename="partner-match-account.json"'
    return response


@bp.post("/account/delete")
@login_required
def delete() -> WerkzeugResponse:
    actor = signed_in()
    if not FlaskForm().validate_on_submit():
        abort(400, _("the form expired: reload the page"))
    partner_match().accounts.delete(actor)
    logout_user()
    flash(_("Your account and its personal data are deleted."))
    return redirect(url_for("pages.index"))


@bp.get("/privacy")
def privacy() -> str:
    return render_template("privacy.html")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
