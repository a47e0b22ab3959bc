"""JSON API under /api/v1, validated with pydantic through spectree and described at /openapi.json."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from typing import Any, Literal

from flask import Blueprint, Flask, Response, jsonify, request, url_for
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from spectree import Response as SpecResponse
from spectree import SpecTree

from matcher import vocab
from matcher.app import IndexInfo, Listed, OrganisationFilter, OrganisationPage, OrganisationQuery
from matcher.eligibility import Eligibility
from matcher.fairness import FairConfig
from matcher.recommend import MatchRequest, Recommendation, UnknownOrganisation
from service import csrf, limiter
from service.errors import error_response
from service.state import partner_match

MAX_IDEA = 5000
MAX_K = 100
PAGE_SIZE = 20


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
    newcomer_share: float = Field(FairConfig.share, ge=0.0, le=1.0)

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
    q: str = Field("", max_length=200, description="Part of the name")
    theme: str = Field("", max_length=MAX_IDEA, description="Rank by similarity of the profile to this text")
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
    score: float | None = None


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


# ----------------------------------------------------------------------------- adapters

bp = Blueprint("api", __name__, url_prefix="/api/v1")
health = Blueprint("health", __name__)


def to_request(body: RecommendationIn) -> MatchRequest:
    """The domain request; LookupError names the field of an unknown organisation."""
    pm = partner_match()
    return MatchRequest(idea=body.idea, action=body.action,
                        applicant=pm.resolve(body.applicant, "applicant") if body.applicant is not None else None,
                        partners=[pm.resolve(ref, f"partners.{i}") for i, ref in enumerate(body.partners)],
                        sectors=body.sectors, countries=body.countries, exclude_countries=body.exclude_countries,
                        k=body.k, newcomer_share=body.newcomer_share)


def eligibility_json(e: Eligibility | None) -> dict[str, Any]:
    if e is None:
        return {"eligible": False, "missing": [], "programme_countries": []}
    return {"eligible": e.eligible, "missing": e.missing, "programme_countries": e.programme_countries}


def result_json(r: Recommendation) -> dict[str, Any]:
    return {
        "organisation": {"id": r.organisation_id, "name": r.name, "country": r.country, "sector": r.sector,
                         "newcomer": r.newcomer},
        "score": r.score, "reasons": [x.as_dict() for x in r.reasons], "known_partner": r.known_partner,
        "partner_of_partner": r.partner_of_partner, "projects": r.projects, "coordinated": r.coordinated,
        "eligibility_with": eligibility_json(r.eligibility_with),
    }


def meta_json(info: IndexInfo) -> dict[str, str]:
    return {"index_version": info.version, "model_id": info.model_id}


def _bad_lookup(exc: LookupError) -> Response:
    message = str(exc).strip("'\"")
    field = message.split(":", 1)[0] if ":" in message else "organisation"
    return error_response(400, "unknown organisation", [{"field": field, "message": message}])


def listed_json(item: Listed, fields: type[BaseModel]) -> dict[str, Any]:
    """A listed organisation with exactly the fields of the response model."""
    values = asdict(item)
    return {k: values[k] for k in fields.model_fields}


@bp.post("/recommendations")
@spec.validate(json=RecommendationIn, resp=SpecResponse(HTTP_200=RecommendationOut, HTTP_400=ErrorOut,
                                                        HTTP_503=ErrorOut), tags=["matching"])
def recommendations() -> Response:
    """Ranked complementary partners, with reasons and the consortium's eligibility."""
    body = RecommendationIn.model_validate(request.get_json())
    try:
        found = partner_match().recommend(to_request(body))
    except (LookupError, UnknownOrganisation) as exc:
        return _bad_lookup(exc)
    return jsonify({"results": [result_json(r) for r in found.result.results],
                    "eligibility": eligibility_json(found.result.eligibility), "meta": meta_json(found.index)})


@bp.post("/consortia")
@spec.validate(json=ConsortiaIn, resp=SpecResponse(HTTP_200=ConsortiaOut, HTTP_400=ErrorOut, HTTP_503=ErrorOut),
               tags=["matching"])
def consortia() -> Response:
    """Alternative complete, eligible consortia mixing known and new partners."""
    body = ConsortiaIn.model_validate(request.get_json())
    try:
        found = partner_match().propose(to_request(body), n=body.n)
    except (LookupError, UnknownOrganisation) as exc:
        return _bad_lookup(exc)
    return jsonify({"consortia": [{"members": [result_json(m) for m in c.members],
                                   "eligibility": eligibility_json(c.eligibility), "newcomers": c.newcomers,
                                   "known_partners": c.known_partners} for c in found.consortia],
                    "meta": meta_json(found.index)})


def organisation_query(q: OrganisationsQuery) -> OrganisationQuery:
    return OrganisationQuery(OrganisationFilter(
        name=q.q, countries=(q.country,) if q.country else (), sectors=(q.sector,) if q.sector else (),
        org_types=(q.type,) if q.type else (), newcomer=q.newcomer), theme=q.theme, page=q.page,
        page_size=PAGE_SIZE)


@bp.get("/organisations")
@spec.validate(query=OrganisationsQuery, resp=SpecResponse(HTTP_200=OrganisationsOut, HTTP_400=ErrorOut,
                                                           HTTP_503=ErrorOut), tags=["organisations"])
def organisations() -> Response:
    """Organisations by name, country, sector, type and newcomer status, 20 a page; ranked by ``theme`` if given."""
    q = OrganisationsQuery.model_validate(request.args.to_dict())
    found: OrganisationPage = partner_match().search(organisation_query(q))
    return jsonify({"items": [listed_json(o, OrganisationSummary) for o in found.items], "page": found.page,
                    "pages": found.pages, "total": found.total})


@bp.get("/organisations/<int:org_id>")
@spec.validate(resp=SpecResponse(HTTP_200=OrganisationDetail, HTTP_404=ErrorOut), tags=["organisations"])
def organisation(org_id: int) -> Response:
    """One organisation: profile, experience, past projects, known partners, similar organisations."""
    detail = partner_match().organisation(org_id)
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
        org_id = partner_match().register(body.model_dump())
    except ValueError as exc:
        field, _, message = str(exc).partition(": ")
        return error_response(400, "invalid organisation", [{"field": field, "message": message or str(exc)}])
    response = jsonify({"id": org_id, "name": body.name, "url": url_for("api.organisation", org_id=org_id)})
    response.status_code = 201
    return response


def newcomer_query(q: NewcomersQuery) -> OrganisationQuery:
    """Newcomers passing the filters, by relevance to the theme (by name without one)."""
    return OrganisationQuery(OrganisationFilter(countries=(q.country,) if q.country else (),
                                                sectors=(q.sector,) if q.sector else (), newcomer=True),
                             theme=q.theme, page=1, page_size=q.limit)


def newcomer_items(q: NewcomersQuery) -> list[dict[str, Any]]:
    items = partner_match().search(newcomer_query(q)).items
    return [{**listed_json(o, NewcomerOut), "score": o.score or 0.0} for o in items]


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
    items = newcomer_items(q)
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
    reasons = partner_match().readiness()
    if reasons:
        response = jsonify({"status": "unavailable", "reasons": reasons})
        response.status_code = 503
        response.headers["Retry-After"] = "30"
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
