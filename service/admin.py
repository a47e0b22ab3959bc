"""The moderation page for the registry's admins (a national agency's staff): claims, duplicates,
reports, hiding; each action is recorded in the audit log by the domain."""

from __future__ import annotations

from flask import Blueprint, Flask, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response as WerkzeugResponse

from matcher.app import AccountError, Actor
from service import i18n
from service.auth import signed_in
from service.state import partner_match

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _admin() -> Actor:
    actor = signed_in()
    if not actor.admin:
        abort(403, _("only an admin of the registry may moderate"))
    if not FlaskForm().validate_on_submit() and request.method == "POST":
        abort(400, _("the form expired: reload the page"))
    return actor


@bp.get("/")
@login_required
def moderation() -> str:
    return render_template("admin.html", m=partner_match().accounts.moderation(_admin()), form=FlaskForm())


def _done(message: str) -> WerkzeugResponse:
    flash(message)
    return redirect(url_for("admin.moderation"))


@bp.post("/claims/<int:claim_id>")
@login_required
def decide_claim(claim_id: int) -> WerkzeugResponse:
    approve = request.form.get("decision") == "approve"
    try:
        partner_match().accounts.decide_claim(_admin(), claim_id, approve)
    except AccountError as exc:
        abort(exc.status, i18n.translate(exc.message))
    return _done(_("Claim approved: the account owns the organisation now.") if approve else _("Claim rejected."))


@bp.post("/duplicates/<int:pair_id>")
@login_required
def duplicate(pair_id: int) -> WerkzeugResponse:
    merge = request.form.get("decision") == "merge"
    try:
        partner_match().accounts.resolve_duplicate(_admin(), pair_id, merge)
    except AccountError as exc:
        abort(exc.status, i18n.translate(exc.message))
    partner_match().fingerprint(force=True)
    return _done(
        _("Merged; the audit log keeps a copy of the merged organisation.")
        if merge
        else _("Marked as different organisations.")
    )


@bp.post("/organisations/<int:org_id>/hidden")
@login_required
def hide(org_id: int) -> WerkzeugResponse:
    hidden = request.form.get("hidden") == "1"
    partner_match().accounts.set_hidden(_admin(), org_id, hidden)
    partner_match().fingerprint(force=True)
    return _done(_("Hidden from every list and search.") if hidden else _("Shown again."))


@bp.post("/reports/<int:report_id>/close")
@login_required
def close_report(report_id: int) -> WerkzeugResponse:
    partner_match().accounts.close_report(_admin(), report_id)
    return _done(_("Report closed."))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
