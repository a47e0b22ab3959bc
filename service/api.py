"""JSON API under /api/v1, validated with pydantic through spectree and described at /openapi.json."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Literal

from flask import Blueprint, Flask, Response, jsonify, request, url_for
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from spectree import Response as SpecResponse
from spectree import SpecTree
from sqlalchemy import func, select

from matcher import vocab
from matcher.db import Organisation, Participation, Project
from matcher.eligibility import Eligibility
from matcher.newcomer import experience_of
from matcher.recommend import MatchRequest, Recommendation, UnknownOrganisation
from matcher.registry import participation_counts
from service import csrf, limiter
from service.state import IndexUnavailable, services

MAX_IDEA = 5000
MAX_K = 100
PAGE_SIZE = 20
RETRY_AFTER = "30"


def error_response(status: int, error: str, detail: list[dict[str, Any]] | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    """The one shape of every JSON error: {"error": ..., "detail": [{"field": ..., "message": ...}]}."""
    response = jsonify({"error": error, "detail": detail or []})
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _detail(err: Exception) -> list[dict[str, Any]]:
    detail = []
    for e in getattr(err, "errors", lambda: [])():
        loc = [str(x) for x in e.get("loc", ()) if x not in ("body", "query")]
        message = str(e.get("msg", "invalid value")).removeprefix("Value error, ")
        detail.append({"field": ".".join(loc) or "body", "message": message})
    return detail


def validation_error(err: Exception) -> Response:
    return error_response(400, "invalid request", _detail(err))


def _validation_hook(req: Any, resp: Any, err: Exception | None, instance: Any, adapter: Any = None) -> None:
    """Rewrite spectree's validation errors into the service's error shape, as 400."""
    if err is None or resp is None:
        return
    resp.set_data(json.dumps({"error": "invalid request", "detail": _detail(err)}))
    resp.status_code = 400
    resp.mimetype = "application/json"


spec = SpecTree("flask", title="partner-match API", version="1", path="apidoc", before=_validation_hook,
                validation_error_status=400, annotations=False)


# ----------------------------------------------------------------------------- models

def _check_countries(values: list[str]) -> list[str]:
    out = []
    for v in values:
        code = vocab.normalise_country(v)  # UnknownCode is a ValueError: pydantic reports it
        if code:
            out.append(code)
    return out


def _check_sectors(values: list[str]) -> list[str]:
    return [vocab.check_sector(v) for v in values]


OrgRef = int | str


class RecommendationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    idea: str = Field("", max_length=MAX_IDEA, description="The project idea, free text")
    action: Literal["cooperation", "small-scale", "school"] = "cooperation"
    applicant: OrgRef | None = Field(None, description="Organisation id (integer) or PIC (string of digits)")
    partners: list[OrgRef] = Field(default_factory=list, max_length=30)
    sectors: list[str] = Field(default_factory=list, max_length=10)
    countries: list[str] = Field(default_factory=list, max_length=60)
    exclude_countries: list[str] = Field(default_factory=list, max_length=60)
    k: int = Field(10, ge=1, le=MAX_K)
    newcomer_share: float = Field(0.3, ge=0.0, le=1.0)

    _countries = field_validator("countries", "exclude_countries")(_check_countries)
    _sectors = field_validator("sectors")(_check_sectors)


class ConsortiaIn(RecommendationIn):
    n: int = Field(3, ge=1, le=5)


class OrganisationBrief(BaseModel):
    id: int
    name: str
    country: str | None
    sector: str
    newcomer: bool


class ReasonOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: str
    text: str


class EligibilityOut(BaseModel):
    eligible: bool
    missing: list[str]
    programme_countries: list[str]


class ResultOut(BaseModel):
    organisation: OrganisationBrief
    score: float
    reasons: list[ReasonOut]
    known_partner: bool
    partner_of_partner: bool
    projects: int
    coordinated: int
    eligibility_with: EligibilityOut


class Meta(BaseModel):
    index_version: str
    model_id: str


class RecommendationOut(BaseModel):
    results: list[ResultOut]
    eligibility: EligibilityOut
    meta: Meta


class ConsortiumOut(BaseModel):
    members: list[ResultOut]
    eligibility: EligibilityOut
    newcomers: int
    known_partners: int


class ConsortiaOut(BaseModel):
    consortia: list[ConsortiumOut]
    meta: Meta


class ErrorOut(BaseModel):
    error: str
    detail: list[dict[str, Any]]


class OrganisationsQuery(BaseModel):
    q: str = Field("", max_length=200)
    country: str | None = Field(None, max_length=60)
    sector: str | None = Field(None, max_length=40)
    type: str | None = Field(None, max_length=300)
    newcomer: bool | None = None
    page: int = Field(1, ge=1, le=10_000)

    @field_validator("country")
    @classmethod
    def _country(cls, v: str | None) -> str | None:
        return vocab.normalise_country(v) if v else None

    @field_validator("sector")
    @classmethod
    def _sector(cls, v: str | None) -> str | None:
        return vocab.check_sector(v) if v else None


class OrganisationListed(BaseModel):
    """What every listing shows of an organisation."""

    id: int
    name: str
    country: str | None
    city: str | None
    sector: str
    org_type: str | None


class OrganisationSummary(OrganisationListed):
    newcomer: bool
    projects: int


class OrganisationsOut(BaseModel):
    items: list[OrganisationSummary]
    page: int
    pages: int
    total: int


class PastProjectOut(BaseModel):
    identifier: str
    title: str | None
    year: int | None
    role: str


class PartnerOut(BaseModel):
    id: int
    name: str
    country: str | None
    shared_projects: int


class SimilarOut(BaseModel):
    id: int
    name: str
    country: str | None
    sector: str
    score: float


class ExperienceOut(BaseModel):
    projects: int
    coordinated: int
    first_year: int | None
    last_year: int | None
    partners: int


class OrganisationDetail(BaseModel):
    id: int
    name: str
    short_name: str | None
    other_names: list[str]
    pic: str | None
    oid: str | None
    country: str | None
    city: str | None
    region: str | None
    website: str | None
    org_type: str | None
    sector: str
    description: str | None
    sources: list[str]
    newcomer: bool
    experience: ExperienceOut
    projects: list[PastProjectOut]
    known_partners: list[PartnerOut]
    similar: list[SimilarOut]


class RegisterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=2, max_length=300)
    description: str = Field(..., min_length=20, max_length=MAX_IDEA)
    country: str = Field(..., max_length=60)
    sector: str
    organisation_type: str | None = Field(None, max_length=300)
    city: str | None = Field(None, max_length=200)
    website: str | None = Field(None, max_length=300)
    pic: str | None = Field(None, pattern=r"^\d{9}$")

    @field_validator("country")
    @classmethod
    def _country(cls, v: str) -> str:
        code = vocab.normalise_country(v)
        if code is None:
            raise ValueError("a country is required")
        return code

    _sector = field_validator("sector")(vocab.check_sector)


class RegisterOut(BaseModel):
    id: int
    name: str
    url: str


class NewcomersQuery(BaseModel):
    theme: str = Field("", max_length=MAX_IDEA)
    country: str | None = Field(None, max_length=60)
    sector: str | None = Field(None, max_length=40)
    limit: int = Field(50, ge=1, le=500)
    format: Literal["json", "csv"] = "json"

    _country = field_validator("country")(lambda v: vocab.normalise_country(v) if v else None)
    _sector = field_validator("sector")(lambda v: vocab.check_sector(v) if v else None)


class NewcomerOut(OrganisationListed):
    website: str | None
    score: float
    description: str | None


class NewcomersOut(BaseModel):
    items: list[NewcomerOut]
    theme: str


class Health(BaseModel):
    status: str
    reasons: list[str] = []


# ----------------------------------------------------------------------------- helpers

bp = Blueprint("api", __name__, url_prefix="/api/v1")
health = Blueprint("health", __name__)


def unavailable(exc: IndexUnavailable) -> Response:
    return error_response(503, "search index unavailable",
                          [{"field": "index", "message": r} for r in exc.reasons], {"Retry-After": RETRY_AFTER})


def resolve(ref: OrgRef | None, field: str) -> int | None:
    """An organisation id for an id (int) or a PIC (digit string); LookupError names the field."""
    if ref is None:
        return None
    with services().db.session() as s:
        if isinstance(ref, int):
            found = s.get(Organisation, ref)
        else:
            found = s.scalar(select(Organisation).where(Organisation.pic == ref.strip()))
    if found is None:
        raise LookupError(f"{field}: no organisation with {'id' if isinstance(ref, int) else 'PIC'} {ref}")
    return found.id


def to_request(body: RecommendationIn) -> MatchRequest:
    partners = []
    for i, ref in enumerate(body.partners):
        org_id = resolve(ref, f"partners.{i}")
        if org_id is not None:
            partners.append(org_id)
    return MatchRequest(idea=body.idea, action=body.action, applicant=resolve(body.applicant, "applicant"),
                        partners=partners, sectors=body.sectors, countries=body.countries,
                        exclude_countries=body.exclude_countries, k=body.k, newcomer_share=body.newcomer_share)


def eligibility_json(e: Eligibility) -> dict[str, Any]:
    return {"eligible": e.eligible, "missing": e.missing, "programme_countries": e.programme_countries}


def result_json(r: Recommendation) -> dict[str, Any]:
    return {
        "organisation": {"id": r.organisation_id, "name": r.name, "country": r.country, "sector": r.sector,
                         "newcomer": r.newcomer},
        "score": r.score, "reasons": [x.as_dict() for x in r.reasons], "known_partner": r.known_partner,
        "partner_of_partner": r.partner_of_partner, "projects": r.projects, "coordinated": r.coordinated,
        "eligibility_with": eligibility_json(r.eligibility_with) if r.eligibility_with else
        {"eligible": False, "missing": [], "programme_countries": []},
    }


def _bad_lookup(exc: LookupError) -> Response:
    message = str(exc).strip("'\"")
    field = message.split(":", 1)[0] if ":" in message else "organisation"
    return error_response(400, "unknown organisation", [{"field": field, "message": message}])


# ----------------------------------------------------------------------------- endpoints

@bp.post("/recommendations")
@spec.validate(json=RecommendationIn, resp=SpecResponse(HTTP_200=RecommendationOut, HTTP_400=ErrorOut,
                                                        HTTP_503=ErrorOut), tags=["matching"])
def recommendations() -> Response:
    """Ranked complementary partners, with reasons and the consortium's eligibility."""
    body = RecommendationIn.model_validate(request.get_json())
    try:
        req = to_request(body)
        matcher, space = services().matcher()
        result = matcher.recommend(req)
    except IndexUnavailable as exc:
        return unavailable(exc)
    except (LookupError, UnknownOrganisation) as exc:
        return _bad_lookup(exc)
    return jsonify({"results": [result_json(r) for r in result.results],
                    "eligibility": eligibility_json(result.eligibility),
                    "meta": {"index_version": space.version, "model_id": space.manifest.model_id}})


@bp.post("/consortia")
@spec.validate(json=ConsortiaIn, resp=SpecResponse(HTTP_200=ConsortiaOut, HTTP_400=ErrorOut, HTTP_503=ErrorOut),
               tags=["matching"])
def consortia() -> Response:
    """Alternative complete, eligible consortia mixing known and new partners."""
    body = ConsortiaIn.model_validate(request.get_json())
    try:
        req = to_request(body)
        matcher, space = services().matcher()
        proposals = matcher.propose_consortia(req, n=body.n)
    except IndexUnavailable as exc:
        return unavailable(exc)
    except (LookupError, UnknownOrganisation) as exc:
        return _bad_lookup(exc)
    return jsonify({"consortia": [{"members": [result_json(m) for m in c.members],
                                   "eligibility": eligibility_json(c.eligibility), "newcomers": c.newcomers,
                                   "known_partners": c.known_partners} for c in proposals],
                    "meta": {"index_version": space.version, "model_id": space.manifest.model_id}})


def search_organisations(q: OrganisationsQuery) -> tuple[list[dict[str, Any]], int]:
    svc = services()
    with svc.db.session() as s:
        counts = participation_counts(s)
        query = select(Organisation)
        if q.q.strip():
            query = query.where(func.lower(Organisation.name).contains(q.q.strip().lower(), autoescape=True))
        if q.country:
            query = query.where(Organisation.country == q.country)
        if q.sector:
            query = query.where(Organisation.sector == q.sector)
        if q.type:
            query = query.where(Organisation.org_type == q.type)
        orgs = s.scalars(query.order_by(Organisation.name, Organisation.id)).all()
        items = [o for o in orgs if q.newcomer is None or svc.rule.is_newcomer(counts.get(o.id, 0)) == q.newcomer]
        total = len(items)
        page = items[(q.page - 1) * PAGE_SIZE: q.page * PAGE_SIZE]
        return [{"id": o.id, "name": o.display_name, "country": o.country, "city": o.city, "sector": o.sector,
                 "org_type": o.org_type, "newcomer": svc.rule.is_newcomer(counts.get(o.id, 0)),
                 "projects": counts.get(o.id, 0)} for o in page], total


@bp.get("/organisations")
@spec.validate(query=OrganisationsQuery, resp=SpecResponse(HTTP_200=OrganisationsOut, HTTP_400=ErrorOut),
               tags=["organisations"])
def organisations() -> Response:
    """Organisations by name, country, sector, type and newcomer status, 20 a page."""
    q = OrganisationsQuery.model_validate(request.args.to_dict())
    items, total = search_organisations(q)
    return jsonify({"items": items, "page": q.page, "pages": max(1, -(-total // PAGE_SIZE)), "total": total})


def organisation_detail(org_id: int) -> dict[str, Any] | None:
    svc = services()
    with svc.db.session() as s:
        org = s.get(Organisation, org_id)
        if org is None:
            return None
        exp = experience_of(s, org_id)
        rows = s.execute(select(Project.identifier, Project.title, Project.call_year, Project.start_date,
                                Participation.role)
                         .join(Participation, Participation.project_id == Project.id)
                         .where(Participation.organisation_id == org_id)).all()
        projects = sorted(({"identifier": i, "title": t, "year": sd.year if sd else y, "role": r}
                           for i, t, y, sd, r in rows), key=lambda p: -(p["year"] or 0))
        a, b = Participation.__table__.alias("a"), Participation.__table__.alias("b")
        partner_rows = s.execute(
            select(b.c.organisation_id, func.count()).join(a, a.c.project_id == b.c.project_id)
            .where(a.c.organisation_id == org_id, b.c.organisation_id != org_id)
            .group_by(b.c.organisation_id).order_by(func.count().desc(), b.c.organisation_id).limit(20)).all()
        partners_by_id = {o.id: o for o in s.scalars(select(Organisation).where(
            Organisation.id.in_([p for p, _ in partner_rows])))}
        partners = [{"id": p, "name": partners_by_id[p].display_name, "country": partners_by_id[p].country,
                     "shared_projects": int(n)} for p, n in partner_rows]
        similar: list[dict[str, Any]] = []
        try:
            _, space = svc.matcher()
            vector = space.vector(org_id)
            if vector is not None:
                hits = [h for h in space.search(vector, 7) if h.id != org_id][:6]
                found = {o.id: o for o in s.scalars(select(Organisation).where(
                    Organisation.id.in_([h.id for h in hits])))}
                similar = [{"id": h.id, "name": found[h.id].display_name, "country": found[h.id].country,
                            "sector": found[h.id].sector, "score": round(h.score, 4)} for h in hits if h.id in found]
        except IndexUnavailable:
            similar = []
        return {
            "id": org.id, "name": org.display_name, "short_name": org.short_name, "other_names": org.other_names,
            "pic": org.pic, "oid": org.oid, "country": org.country, "city": org.city, "region": org.region,
            "website": org.website, "org_type": org.org_type, "sector": org.sector, "description": org.description,
            "sources": org.sources, "newcomer": svc.rule.is_newcomer(exp.projects),
            "experience": exp.__dict__, "projects": projects[:50], "known_partners": partners, "similar": similar,
        }


@bp.get("/organisations/<int:org_id>")
@spec.validate(resp=SpecResponse(HTTP_200=OrganisationDetail, HTTP_404=ErrorOut), tags=["organisations"])
def organisation(org_id: int) -> Response:
    """One organisation: profile, experience, past projects, known partners, similar organisations."""
    detail = organisation_detail(org_id)
    if detail is None:
        return error_response(404, "organisation not found", [{"field": "id", "message": f"no organisation {org_id}"}])
    return jsonify(detail)


@bp.post("/organisations")
@limiter.limit("30/hour", methods=["POST"])
@spec.validate(json=RegisterIn, resp=SpecResponse(HTTP_201=RegisterOut, HTTP_400=ErrorOut), tags=["organisations"])
def register() -> Response:
    """Register an organisation; it is embedded at once and found by the next search."""
    body = RegisterIn.model_validate(request.get_json())
    try:
        org_id = services().register(body.model_dump())
    except ValueError as exc:
        field, _, message = str(exc).partition(": ")
        return error_response(400, "invalid organisation", [{"field": field, "message": message or str(exc)}])
    response = jsonify({"id": org_id, "name": body.name, "url": url_for("api.organisation", org_id=org_id)})
    response.status_code = 201
    return response


def newcomer_list(q: NewcomersQuery) -> list[dict[str, Any]]:
    """Newcomers ranked by similarity of their profile to the theme (by name without a theme)."""
    svc = services()
    matcher, space = svc.matcher()
    with svc.db.session() as s:
        counts = participation_counts(s)
        query = select(Organisation)
        if q.country:
            query = query.where(Organisation.country == q.country)
        if q.sector:
            query = query.where(Organisation.sector == q.sector)
        orgs = [o for o in s.scalars(query) if svc.rule.is_newcomer(counts.get(o.id, 0))]
        if q.theme.strip():
            hits = space.search(svc.encoder.encode_queries([q.theme])[0], q.limit, {o.id for o in orgs})
            by_id = {o.id: o for o in orgs}
            ranked = [(by_id[h.id], h.score) for h in hits]
        else:
            ranked = [(o, 0.0) for o in sorted(orgs, key=lambda o: (o.display_name, o.id))[: q.limit]]
        return [{"id": o.id, "name": o.display_name, "country": o.country, "city": o.city, "sector": o.sector,
                 "org_type": o.org_type, "website": o.website, "score": round(float(score), 4),
                 "description": o.description} for o, score in ranked]


def newcomers_csv(items: list[dict[str, Any]]) -> Response:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["id", "name", "country", "city", "sector", "org_type", "website",
                                                "score", "description"])
    writer.writeheader()
    for item in items:
        writer.writerow({k: (v.replace("\n", " ") if isinstance(v, str) else v) for k, v in item.items()})
    response = Response(buffer.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="newcomers.csv"'
    return response


@bp.get("/newcomers")
@spec.validate(query=NewcomersQuery, resp=SpecResponse(HTTP_200=NewcomersOut, HTTP_400=ErrorOut, HTTP_503=ErrorOut),
               tags=["newcomers"], skip_validation=True)
def newcomers() -> Response:
    """Organisations new to the programme, ranked by relevance to a theme; JSON or CSV (``format=csv``)."""
    try:
        q = NewcomersQuery.model_validate(request.args.to_dict())
    except ValidationError as exc:
        return validation_error(exc)
    try:
        items = newcomer_list(q)
    except IndexUnavailable as exc:
        return unavailable(exc)
    if q.format == "csv":
        return newcomers_csv(items)
    return jsonify({"items": items, "theme": q.theme})


@health.get("/livez")
@spec.validate(resp=SpecResponse(HTTP_200=Health), tags=["health"])
def livez() -> Response:
    """The process answers."""
    return jsonify({"status": "ok", "reasons": []})


@health.get("/readyz")
@spec.validate(resp=SpecResponse(HTTP_200=Health, HTTP_503=Health), tags=["health"])
def readyz() -> Response:
    """Database reachable, index loaded and consistent with the database and the configured model."""
    reasons = services().readiness()
    if reasons:
        response = jsonify({"status": "unavailable", "reasons": reasons})
        response.status_code = 503
        response.headers["Retry-After"] = RETRY_AFTER
        return response
    return jsonify({"status": "ok", "reasons": []})


def init_app(app: Flask) -> None:
    csrf.exempt(bp)
    csrf.exempt(health)
    app.register_blueprint(bp)
    app.register_blueprint(health)
    spec.register(app)

    @app.get("/openapi.json")
    def openapi() -> Response:
        """The API's OpenAPI document (pages are not part of it)."""
        document = dict(spec.spec)
        document["paths"] = {p: v for p, v in document["paths"].items()
                             if p.startswith("/api/") or p in ("/livez", "/readyz")}
        return jsonify(document)

    @app.errorhandler(413)
    def too_large(_: Exception) -> Response:
        return error_response(413, "request too large", [{"field": "body", "message": "the body exceeds the limit"}])

    @app.errorhandler(429)
    def too_many(exc: Exception) -> Response:
        return error_response(429, "too many requests", [{"field": "rate", "message": str(exc)}])

    @app.errorhandler(404)
    def not_found(exc: Exception) -> Response | tuple[str, int]:
        if request.path.startswith("/api/"):
            return error_response(404, "not found", [{"field": "path", "message": request.path}])
        from flask import render_template

        return render_template("error.html", title="Not found", message="This page does not exist."), 404

    @app.errorhandler(405)
    def not_allowed(exc: Exception) -> Response:
        return error_response(405, "method not allowed", [{"field": "method", "message": request.method}])

    @app.errorhandler(400)
    def bad_request(exc: Exception) -> Response | tuple[str, int]:
        message = str(getattr(exc, "description", exc))
        if request.path.startswith("/api/"):
            return error_response(400, "bad request", [{"field": "body", "message": message}])
        from flask import render_template

        return render_template("error.html", title="Bad request", message=message), 400

