"""Server-rendered pages: search, results with a draft consortium, proposals, organisations,
newcomer discovery and registration. They work without JavaScript; static/app.js only helps.

Over 400 lines: the public pages and their forms, each view a few lines over the front door.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import login_required
from flask_wtf import FlaskForm
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup
from werkzeug.wrappers import Response as WerkzeugResponse
from wtforms import (
    Form,
    HiddenField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    URLField,
    widgets,
)
from wtforms.fields import BooleanField, EmailField
from wtforms.validators import URL, DataRequired, InputRequired, Length, NumberRange, Optional, Regexp

from matcher import eligibility, vocab
from matcher.accounts import EDITABLE, EMAIL
from matcher.app import AccountError, DraftPanel, NameMatch, NameTaken, OrganisationPage
from matcher.recommend import MatchRequest
from service import i18n, limiter
from service.auth import own_path, page_actor, signed_in
from service.exports import consortium_table, csv_file, export_name, newcomer_table, plural, xlsx_file
from service.state import multilingual, partner_match

bp = Blueprint("pages", __name__)
EMAIL_FORMAT = Regexp(EMAIL.pattern, message="Enter an e-mail address.")
ACTIONS = [(key, f"{rule.label} ({rule.code})") for key, rule in eligibility.actions().items()]
CALL_YEARS = list(range(2021, eligibility.default_call_year() + 2))
MAX_PARTNERS = 50  # as the API: a consortium is at most a few dozen organisations


class MultiCheckboxField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


def sector_choices() -> list[tuple[str, str]]:
    return list(vocab.sectors().items())


def country_choices() -> list[tuple[str, str]]:
    """EU Member States and associated countries of the next call."""
    return vocab.country_choices(eligibility.counting_countries(eligibility.default_call_year()))


class SearchForm(FlaskForm):
    idea = TextAreaField(
        _l("Your project idea"),
        validators=[DataRequired(), Length(max=5000)],
        description=_l("What do you want to do, with whom, for whom?"),
    )
    applicant = StringField(
        _l("Your organisation"), validators=[Optional(), Length(max=300)], description=_l("Start typing its name")
    )
    applicant_country = SelectField(
        _l("Your country"),
        choices=[("", _l("(from your organisation's record)"))] + country_choices(),
        validators=[Optional()],
        description=_l("Not registered yet? Give your country and sector: eligibility and suggestions use them"),
    )
    applicant_sector = SelectField(
        _l("Your sector"),
        choices=[("", _l("(from your organisation's record)"))] + sector_choices(),
        validators=[Optional()],
    )
    partners = TextAreaField(
        _l("Partners already found"),
        validators=[Optional(), Length(max=3000)],
        description=_l("One organisation name per line"),
    )
    action = SelectField(_l("Action"), choices=ACTIONS, default="cooperation")
    call_year = SelectField(
        _l("Call year"),
        choices=[(str(y), str(y)) for y in CALL_YEARS],
        default=str(eligibility.default_call_year()),
        description=_l("Which countries take part, and how, depends on the call"),
    )
    sectors = MultiCheckboxField(_l("Sectors you want in the consortium"), choices=sector_choices())
    countries = SelectMultipleField(_l("Only these countries (optional)"), choices=country_choices())
    exclude_countries = SelectMultipleField(_l("Leave out these countries (optional)"), choices=country_choices())
    newcomer_share = IntegerField(
        _l("Share of newcomers in the results (%)"),
        default=round(100 * MatchRequest.newcomer_share),
        validators=[InputRequired(), NumberRange(0, 100)],
    )


class DraftForm(FlaskForm):
    org_id = HiddenField(validators=[DataRequired()])
    op = HiddenField(validators=[DataRequired()])


class RegisterForm(FlaskForm):
    name = StringField(_l("Organisation name"), validators=[DataRequired(), Length(min=2, max=300)])
    sector = SelectField(_l("Sector"), choices=sector_choices(), validators=[DataRequired()])
    organisation_type = StringField(
        _l("Type of organisation"),
        validators=[Optional(), Length(max=300)],
        description=_l("e.g. Vocational school, Youth organisation, SME"),
    )
    country = SelectField(_l("Country"), choices=vocab.country_choices(eligibility.registrable_countries()))
    city = StringField(_l("City"), validators=[Optional(), Length(max=200)])
    website = URLField(_l("Website"), validators=[Optional(), URL(), Length(max=300)])
    contact_name = StringField(_l("Contact person (published)"), validators=[Optional(), Length(max=200)])
    contact_email = EmailField(
        _l("Contact e-mail (never shown: messages are relayed to it)"),
        validators=[Optional(), EMAIL_FORMAT, Length(max=320)],
        description=_l("Without one, messages go to your account's e-mail"),
    )
    different = BooleanField(_l("This is a different organisation from the similar one already registered"))
    description = TextAreaField(
        _l("What your organisation does"),
        validators=[DataRequired(), Length(min=20, max=5000)],
        description=_l("Your field, target groups, what you would bring to a partnership"),
    )


class NewcomerFilter(Form):
    theme = StringField(
        _l("Theme"), validators=[Optional(), Length(max=500)], description=_l("Ranks by relevance; without it, by name")
    )
    country = SelectMultipleField(
        _l("Countries"),
        choices=country_choices(),
        validators=[Optional()],
        description=_l("None chosen: every country"),
    )
    sector = SelectMultipleField(
        _l("Sectors"), choices=sector_choices(), validators=[Optional()], description=_l("None chosen: every sector")
    )
    page = IntegerField(_l("Page"), default=1, validators=[Optional(), NumberRange(1, 10_000)])


def members_of(search: dict[str, Any]) -> list[int]:
    return list(
        dict.fromkeys(
            ([search["applicant"]] if search.get("applicant") else [])
            + search.get("partners", [])
            + session.get("draft", [])
        )
    )


@bp.get("/")
def index() -> str:
    """The search form; with ``?s=`` (from "Edit search" or a shared link) filled in with that search."""
    saved = partner_match().load_search(request.args.get("s", ""))
    form = i18n.localise(SearchForm(data=form_data(saved) if saved else None))
    return render_template("search.html", form=form, editing=bool(saved), language_note=language_note())


def language_note() -> str:
    """What the model understands, said before the user writes (the encoder is a deployment's choice)."""
    if multilingual():
        note = _(
            "Write your idea in your own language: the search understands about a hundred, "
            "Norwegian and Polish included."
        )
    else:
        note = _(
            "Write your idea in English: this installation's search model matches English text only "
            "(an administrator can switch to the multilingual model)."
        )
    return str(note)


def form_data(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved search as the form's fields: organisations by name again."""
    ids = [i for i in [saved.get("applicant"), *saved.get("partners", [])] if i]
    names = {m.id: m.name for m in partner_match().draft(ids, saved.get("action", "cooperation")).members}
    return {
        "idea": saved.get("idea", ""),
        "applicant": names.get(saved.get("applicant") or 0, "")
        or ("" if saved.get("applicant_name") == "your organisation" else saved.get("applicant_name", "")),
        "applicant_country": saved.get("applicant_country") or "",
        "applicant_sector": saved.get("applicant_sector") or "",
        "partners": "\n".join(names[i] for i in saved.get("partners", []) if i in names),
        "action": saved.get("action", "cooperation"),
        "call_year": str(saved.get("call_year") or eligibility.default_call_year()),
        "sectors": saved.get("sectors", []),
        "countries": saved.get("countries", []),
        "exclude_countries": saved.get("exclude_countries", []),
        "newcomer_share": round(100 * float(saved.get("newcomer_share", MatchRequest.newcomer_share))),
    }


@bp.post("/search")
def search() -> str | WerkzeugResponse | tuple[str, int]:
    form = i18n.localise(SearchForm())
    if not form.validate_on_submit():
        return render_template("search.html", form=form, language_note=language_note()), 400
    pm = partner_match()
    errors = []
    applicant = None
    profile = bool(form.applicant_country.data and form.applicant_sector.data)
    if form.applicant.data and form.applicant.data.strip():
        found = pm.find_by_name(form.applicant.data)
        applicant = found.id
        if found.problem and not profile:  # not registered, and no country and sector to go on
            errors.append(("applicant", name_problem(found) + " Not registered yet? Give your country and sector."))
    elif form.applicant_country.data and not form.applicant_sector.data:
        errors.append(("applicant_sector", "give your sector with your country"))
    partners = []
    lines = [line for line in (form.partners.data or "").splitlines() if line.strip()]
    if len(lines) > MAX_PARTNERS:
        errors.append(("partners", f"at most {MAX_PARTNERS} partners, one per line ({len(lines)} given)"))
        lines = []
    for line in lines:
        found = pm.find_by_name(line)
        if found.problem:
            errors.append(("partners", name_problem(found)))
        elif found.id is not None:
            partners.append(found.id)
    if errors:
        for field, message in errors:
            getattr(form, field).errors = [*getattr(form, field).errors, message]
        return render_template("search.html", form=form, language_note=language_note()), 400
    key = pm.save_search(
        {
            "idea": form.idea.data,
            "action": form.action.data,
            "applicant": applicant,
            "partners": partners,
            "sectors": form.sectors.data or [],
            "countries": form.countries.data or [],
            "exclude_countries": form.exclude_countries.data or [],
            "applicant_country": form.applicant_country.data or None if applicant is None else None,
            "applicant_sector": form.applicant_sector.data or None if applicant is None else None,
            "applicant_name": (form.applicant.data or "").strip()[:300] or "your organisation",
            "newcomer_share": (form.newcomer_share.data or 0) / 100,
            "call_year": int(form.call_year.data or eligibility.default_call_year()),
        }
    )
    session["search"] = key  # the cookie holds a key, never the idea: any idea up to 5,000 characters fits
    kept = [i for i in session.get("draft", []) if i != applicant and i not in partners]
    session["draft"] = kept  # a refined search keeps the consortium being built
    if kept:
        flash(
            ngettext(
                "Your draft consortium (%(num)d organisation you added) is kept for this search.",
                "Your draft consortium (%(num)d organisations you added) is kept for this search.",
                len(kept),
            )
        )
    return redirect(url_for("pages.results", s=key))


def name_problem(found: NameMatch) -> str:
    """The problem with a typed name, naming the organisations it may mean (name, city, country)."""
    options = [
        f"{c.name} ({', '.join(x for x in (c.city, vocab.country_name(c.country) if c.country else None) if x)})"
        for c in found.choices
    ]
    return (found.problem or "") + (" " + "; ".join(options) if options else "")


def current_search() -> dict[str, Any] | None:
    """The search of this request: ``?s=`` (a shared link) or the one this browser made last."""
    key = request.args.get("s") or session.get("search")
    params = partner_match().load_search(key) if isinstance(key, str) else None
    if params is not None and key != session.get("search"):
        session["search"], session["draft"] = key, list(params.get("draft", []))  # a shared consortium
    return params


def current_request(extra: dict[str, Any] | None = None) -> MatchRequest | None:
    search = current_search()
    if not search:
        return None
    params = {**search, **(extra or {})}
    return MatchRequest(
        idea=params["idea"],
        action=params["action"],
        applicant=params.get("applicant"),
        partners=[*params.get("partners", []), *session.get("draft", [])],
        sectors=params.get("sectors", []),
        countries=params.get("countries", []),
        exclude_countries=params.get("exclude_countries", []),
        applicant_country=params.get("applicant_country"),
        applicant_sector=params.get("applicant_sector"),
        applicant_name=params.get("applicant_name") or "your organisation",
        newcomer_share=params.get("newcomer_share", MatchRequest.newcomer_share),
        call_year=params.get("call_year"),
        k=params.get("k", 10),
        network_k=params.get("network_k", MatchRequest.network_k),
        new_k=params.get("new_k", MatchRequest.new_k),
    )


@bp.get("/results")
def results() -> str | WerkzeugResponse:
    country = request.args.get("country", "")
    show = request.args.get("show", "all")
    asked = request.args.get("more", "0")
    more = min(int(asked), 3) if asked.isdigit() else 0  # "more results": 15 more new to you, each time
    extra: dict[str, Any] = {"k": 20, "network_k": 5 * (1 + more), "new_k": 15 * (1 + more)}
    if country:
        try:
            extra["countries"] = [vocab.normalise_country(country)]
        except vocab.UnknownCode:
            abort(400, f"unknown country code {country!r}")
    req = current_request(extra)
    if req is None:
        flash(_("Describe your project idea first."))
        return redirect(url_for("pages.index"))
    try:
        found = partner_match().recommend(req)
    except LookupError:
        session.pop("search", None)
        return redirect(url_for("pages.index"))
    result = found.result
    network, fresh = result.network, result.new_to_you
    if show == "newcomers":
        network, fresh = [r for r in network if r.newcomer], [r for r in fresh if r.newcomer]
    elif show == "known":
        fresh = []
    groups = [
        (
            "new",
            _("New to you"),
            _(
                "Relevant to your idea and complementary to your consortium; nobody in it has worked with them. "
                "Some have worked with your partners, who could introduce you."
            )
            + (
                " " + _("About %(share)s %% are new to the programme.", share=round(req.newcomer_share * 100))
                if req.newcomer_share
                else ""
            ),
            fresh,
        ),
        (
            "network",
            _("From your network"),
            _("Organisations that have worked with a member of your consortium."),
            network,
        ),
    ]
    if not req.members:  # nobody known yet: there is no network to draw from
        groups = groups[:1]
    return render_template(
        "results.html",
        groups=groups,
        cards=found.cards,
        search_key=session.get("search"),
        more_url=url_for("pages.results") + "?" + urlencode({**request.args.to_dict(), "more": str(more + 1)})
        if more < 3
        else None,
        empty=_("No organisation matches these filters."),
        request_=req,
        warnings=result.warnings,
        panel=draft_panel(),
        country=country,
        show=show,
        draft_form=DraftForm(),
        countries=country_choices(),
    )


def draft_panel() -> dict[str, Any]:
    search = current_search() or {}
    virtual = MatchRequest(  # the same rule as the recommendations: a registered applicant takes precedence
        applicant=search.get("applicant"),
        applicant_country=search.get("applicant_country"),
        applicant_sector=search.get("applicant_sector"),
        applicant_name=search.get("applicant_name") or "your organisation",
    ).unregistered
    found: DraftPanel = partner_match().draft(
        members_of(search),
        search.get("action", "cooperation"),
        search.get("call_year"),
        search.get("applicant"),
        virtual,
    )
    return {
        "members": found.members,
        "unregistered": found.unregistered,
        "eligibility": found.eligibility,
        "draft": set(session.get("draft", [])),
        "applicant": search.get("applicant"),
    }


@bp.post("/draft")
def draft() -> WerkzeugResponse:
    form = DraftForm()
    if not form.validate_on_submit() or not str(form.org_id.data).isdigit():
        abort(400, "invalid draft change")
    org_id = int(form.org_id.data)
    current = list(session.get("draft", []))
    if form.op.data == "add" and org_id not in current and len(current) < 30:
        if not partner_match().exists(org_id):
            abort(400, f"no organisation {org_id}")
        current.append(org_id)
    elif form.op.data == "remove" and org_id in current:
        current.remove(org_id)
    session["draft"] = current
    return redirect(own_path(request.form.get("next")) or url_for("pages.results"))


@bp.post("/draft/adopt")
def adopt() -> WerkzeugResponse:
    """A whole proposal into the draft consortium in one click."""
    if not FlaskForm().validate_on_submit():
        abort(400, "invalid form: reload the page and try again")
    ids = [int(v) for v in request.form.getlist("org_id") if v.isdigit()][:10]
    if not ids or not all(partner_match().exists(i) for i in ids):
        abort(400, "org_id: no such organisation")
    session["draft"] = list(dict.fromkeys([*session.get("draft", []), *ids]))[:30]
    flash(
        ngettext(
            "%(num)d organisation added to your draft consortium.",
            "%(num)d organisations added to your draft consortium.",
            len(ids),
        )
    )
    return redirect(url_for("pages.consortia"))


@bp.post("/draft/share")
def share_draft() -> WerkzeugResponse:
    """A link to this search with the draft consortium in it: anyone who opens it sees the same."""
    form = FlaskForm()
    search = current_search()
    if not form.validate_on_submit() or search is None:
        abort(400, "nothing to share yet: search first")
    key = partner_match().save_search({**search, "draft": list(session.get("draft", []))})
    session["search"] = key
    flash(_("This page's address now holds your search and draft consortium: copy it to share them."))
    return redirect(url_for("pages.results", s=key))


@bp.get("/draft.<any(csv, xlsx):kind>")
def export_draft(kind: str) -> Response:
    """The draft consortium with the Programme Guide's verdict, as a file for the application team."""
    search = current_search()
    if search is None:
        abort(404, "no search yet: describe your project idea first")
    panel = draft_panel()
    roles = {search.get("applicant"): _("Applicant (coordinator)")}
    roles.update({i: _("Partner") for i in search.get("partners", [])})
    table = consortium_table(panel["members"], panel["eligibility"], roles)
    if kind == "xlsx":
        return xlsx_file(table, "draft-consortium", _("Draft consortium"))
    return csv_file(table, "draft-consortium")


@bp.get("/consortia")
def consortia() -> str | WerkzeugResponse:
    req = current_request()
    if req is None:
        flash(_("Describe your project idea first."))
        return redirect(url_for("pages.index"))
    proposals = partner_match().propose(req, n=3).consortia
    return render_template("consortia.html", proposals=proposals, panel=draft_panel(), draft_form=DraftForm())


@bp.get("/organisations/<int:org_id>")
def organisation(org_id: int) -> str:
    detail = partner_match().organisation(org_id, page_actor())
    if detail is None:
        abort(404)
    return render_template(
        "organisation.html",
        org=detail,
        draft_form=DraftForm(),
        in_search=bool(session.get("search")),
        action_form=FlaskForm(),
    )


NEWCOMER_PAGE = 50
EXPORT_MAX = 10_000  # a whole country's newcomers fit; larger lists page through the API


def _newcomer_filter() -> NewcomerFilter:
    form = i18n.localise(NewcomerFilter(request.args))
    if not form.validate():
        abort(400, "; ".join(f"{k}: {', '.join(v)}" for k, v in form.errors.items()))
    return form


def _newcomer_list(form: NewcomerFilter, page: int, size: int) -> OrganisationPage:
    return partner_match().newcomers(
        theme=form.theme.data or "",
        countries=tuple(form.country.data or ()),
        sectors=tuple(form.sector.data or ()),
        page=page,
        page_size=size,
    )


@bp.get("/newcomers")
def newcomers() -> str:
    form = _newcomer_filter()
    found = _newcomer_list(form, form.page.data or 1, NEWCOMER_PAGE)
    kept = [(k, v) for k, v in request.args.items(multi=True) if k != "page"]

    def page_url(n: int) -> str:
        return url_for("pages.newcomers") + "?" + urlencode([*kept, ("page", str(n))])

    return render_template(
        "newcomers.html",
        found=found,
        form=form,
        first=(found.page - 1) * NEWCOMER_PAGE + 1,
        previous=page_url(found.page - 1) if found.page > 1 else None,
        next=page_url(found.page + 1) if found.page < found.pages else None,
    )


@bp.get("/newcomers.<any(csv, xlsx):kind>")
def newcomers_download(kind: str) -> Response:
    """Every newcomer matching the filters (up to EXPORT_MAX), as a file Excel opens cleanly in any locale."""
    form = _newcomer_filter()
    found = _newcomer_list(form, 1, EXPORT_MAX)
    name = export_name(form.theme.data or "", form.country.data or [], form.sector.data or [])
    if kind == "xlsx":
        return xlsx_file(newcomer_table(found), name, _("Newcomers"))
    return csv_file(newcomer_table(found), name, ";" if request.args.get("sep") == "semicolon" else ",")


def _register_values(form: RegisterForm) -> dict[str, Any]:
    return {
        "name": form.name.data,
        "sector": form.sector.data,
        "organisation_type": form.organisation_type.data,
        "country": form.country.data,
        "city": form.city.data,
        "website": form.website.data,
        "description": form.description.data,
        "contact_name": form.contact_name.data,
        "contact_email": form.contact_email.data,
        "different": bool(form.different.data),
    }


@bp.route("/register", methods=["GET", "POST"])
@login_required
@limiter.limit("30/hour", methods=["POST"])
def register() -> str | WerkzeugResponse | tuple[str, int]:
    form = RegisterForm()
    taken = None
    if request.method == "POST":
        if not form.validate_on_submit():
            return render_template("register.html", form=form), 400
        try:
            org_id = partner_match().register(_register_values(form), signed_in())
        except NameTaken as exc:
            taken = partner_match().organisation(exc.existing)
            return render_template("register.html", form=form, taken=taken), 409
        except AccountError as exc:
            getattr(form, exc.field, form.name).errors = [i18n.translate(exc.message)]
            return render_template("register.html", form=form), exc.status
        except ValueError as exc:
            field, _sep, message = str(exc).partition(": ")
            getattr(form, field, form.name).errors = [message or str(exc)]
            return render_template("register.html", form=form), 400
        flash(_("Thank you: your organisation is registered and can be found by searches from now on."))
        return redirect(url_for("pages.organisation", org_id=org_id))
    return render_template("register.html", form=form)


class EditForm(FlaskForm):
    name = StringField(_l("Organisation name"), validators=[DataRequired(), Length(min=2, max=300)])
    sector = SelectField(_l("Sector"), choices=sector_choices(), validators=[DataRequired()])
    org_type = StringField(_l("Type of organisation"), validators=[Optional(), Length(max=300)])
    city = StringField(_l("City"), validators=[Optional(), Length(max=200)])
    website = URLField(_l("Website"), validators=[Optional(), URL(), Length(max=300)])
    description = TextAreaField(_l("What your organisation does"), validators=[Optional(), Length(max=5000)])
    contact_name = StringField(_l("Contact person (published)"), validators=[Optional(), Length(max=200)])
    contact_email = EmailField(
        _l("Contact e-mail (never shown)"), validators=[Optional(), EMAIL_FORMAT, Length(max=320)]
    )


@bp.route("/organisations/<int:org_id>/edit", methods=["GET", "POST"])
@login_required
def edit_organisation(org_id: int) -> str | WerkzeugResponse | tuple[str, int]:
    pm, actor = partner_match(), signed_in()
    try:
        pm.accounts.require_editor(actor, org_id)
    except AccountError as exc:
        abort(exc.status, i18n.translate(exc.message))
    detail = pm.organisation(org_id, actor) or {}
    form = EditForm(data={k: detail.get(k) for k in EDITABLE})
    title = _("Edit %(name)s", name=detail.get("name"))
    if request.method == "POST":
        if not form.validate_on_submit():
            return render_template("form.html", form=form, title=title, submit=_("Save")), 400
        try:
            pm.update_organisation(org_id, {k: getattr(form, k).data for k in EDITABLE}, actor)
        except ValueError as exc:
            field, _sep, message = str(exc).partition(": ")
            getattr(form, field, form.name).errors = [message or str(exc)]
            return render_template("form.html", form=form, title=title, submit=_("Save")), 400
        flash(_("Saved."))
        return redirect(url_for("pages.organisation", org_id=org_id))
    return render_template("form.html", form=form, title=title, submit=_("Save"))


@bp.post("/organisations/<int:org_id>/claim")
@login_required
def claim(org_id: int) -> WerkzeugResponse:
    if not FlaskForm().validate_on_submit():
        abort(400, _("the form expired: reload the page"))
    try:
        result = partner_match().accounts.claim(signed_in(), org_id)
    except AccountError as exc:
        abort(exc.status, i18n.translate(exc.message))
    flash(
        _("It is yours now: %(why)s.", why=result["reason"])
        if result["status"] == "approved"
        else _("Your claim is recorded: %(why)s.", why=result["reason"])
    )
    return redirect(url_for("pages.organisation", org_id=org_id))


class ContactForm(FlaskForm):
    name = StringField(_l("Your name"), validators=[DataRequired(), Length(max=200)])
    email = EmailField(
        _l("Your e-mail (they will reply to it)"), validators=[DataRequired(), EMAIL_FORMAT, Length(max=320)]
    )
    message = TextAreaField(_l("Your message"), validators=[DataRequired(), Length(min=10, max=5000)])


@bp.route("/organisations/<int:org_id>/contact", methods=["GET", "POST"])
@limiter.limit("5/hour;20/day", methods=["POST"])
def contact(org_id: int) -> str | WerkzeugResponse | tuple[str, int]:
    detail = partner_match().organisation(org_id)
    if detail is None:
        abort(404)
    form = ContactForm()
    title = _("Write to %(name)s", name=detail["name"])
    intro = _("Your message is forwarded by e-mail; their address is not shown to you, yours goes with the message.")
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                partner_match().contact(org_id, form.name.data or "", form.email.data or "", form.message.data or "")
            except AccountError as exc:
                getattr(form, exc.field, form.message).errors = [i18n.translate(exc.message)]
            else:
                flash(_("Your message is on its way."))
                return redirect(url_for("pages.organisation", org_id=org_id))
        return render_template("form.html", form=form, title=title, intro=intro, submit=_("Send")), 400
    return render_template("form.html", form=form, title=title, intro=intro, submit=_("Send"))


class ReportForm(FlaskForm):
    reason = TextAreaField(_l("What is wrong with this entry?"), validators=[DataRequired(), Length(max=2000)])


@bp.route("/organisations/<int:org_id>/report", methods=["GET", "POST"])
@limiter.limit("10/hour", methods=["POST"])
def report(org_id: int) -> str | WerkzeugResponse | tuple[str, int]:
    form = ReportForm()
    if request.method == "POST" and form.validate_on_submit():
        try:
            partner_match().accounts.report(org_id, form.reason.data or "")
        except AccountError as exc:
            abort(exc.status, i18n.translate(exc.message))
        flash(_("Thank you: an admin of the registry will look at it."))
        return redirect(url_for("pages.organisation", org_id=org_id))
    return render_template(
        "form.html",
        form=form,
        title=_("Report a problem"),
        submit=_("Report"),
        intro=_("Wrong data, spam, an organisation someone else took: tell the registry's admins."),
    )


@bp.get("/favicon.ico")
def favicon() -> WerkzeugResponse:
    """Browsers ask for it whatever the page says."""
    return redirect(url_for("static", filename="favicon.svg"), 301)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

    @app.context_processor
    def helpers() -> dict[str, Any]:
        return {
            "sector_label": i18n.sector_label,
            "country_name": i18n.country_name,
            "plural": plural,
            "csrf_token_form": lambda: Markup(f'<input type="hidden" name="csrf_token" value="{generate_csrf()}">'),
        }
