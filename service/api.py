"""JSON API under /api/v1, validated with pydantic through spectree and described at /openapi.json.

Over 400 lines: every endpoint with its OpenAPI declaration; each view is a few lines over the front door.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, render_template, request, url_for
from pydantic import BaseModel, ValidationError
from spectree import Response as SpecResponse
from spectree import SecurityScheme, SecuritySchemeData, SpecTree
from spectree.models import SecureType

from matcher.app import (
    AccountError,
    IndexInfo,
    Listed,
    NameTaken,
    OrganisationFilter,
    OrganisationPage,
    OrganisationQuery,
)
from matcher.eligibility import Eligibility
from matcher.recommend import MatchRequest, Recommendation, UnknownOrganisation
from service import csrf, limiter
from service.auth import token_actor
from service.errors import error_response
from service.exports import csv_file, export_name, newcomer_table
from service.i18n import translate
from service.schemas import (
    ConflictOut,
    ConsortiaIn,
    ConsortiaOut,
    ErrorOut,
    Health,
    NewcomerOut,
    NewcomersOut,
    NewcomersQuery,
    OrganisationDetail,
    OrganisationPatch,
    OrganisationsOut,
    OrganisationsQuery,
    OrganisationSummary,
    PatchOut,
    RecommendationIn,
    RecommendationOut,
    RegisterIn,
    RegisterOut,
)
from service.state import partner_match

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


spec = SpecTree(
    "flask",
    title="partner-match API",
    version="1",
    path="apidoc",
    page_templates={},  # no CDN pages: /api/docs serves Swagger UI from the site's own static files
    # stable schema names a client can generate code against (spectree's default adds a hash)
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda parent, child: child,
    before=_validation_hook,
    validation_error_status=400,
    annotations=False,
    security_schemes=[
        SecurityScheme(
            name="bearer",
            data=SecuritySchemeData(
                type=SecureType.HTTP, scheme="bearer", description="An API token from your account page"
            ),
        )
    ],
)


# ----------------------------------------------------------------------------- models

# models: service/schemas.py

# ----------------------------------------------------------------------------- adapters

bp = Blueprint("api", __name__, url_prefix="/api/v1")
health = Blueprint("health", __name__)
apidocs = Blueprint("apidocs", __name__, url_prefix="/api/docs")

# Swagger UI's own stylesheet sets inline styles; scripts stay 'self' only, as on every page
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


@apidocs.get("")
def page() -> Response:
    """The interactive API reference: Swagger UI 5 from the site's own static files (OpenAPI 3.1), no CDN."""
    response = Response(render_template("apidocs.html"), mimetype="text/html")
    response.headers["Content-Security-Policy"] = DOCS_CSP
    return response


def to_request(body: RecommendationIn) -> MatchRequest:
    """The domain request; LookupError names the field of an unknown organisation."""
    refs = [(body.applicant, "applicant")] if body.applicant is not None else []
    resolved = partner_match().resolve_all([*refs, *((ref, f"partners.{i}") for i, ref in enumerate(body.partners))])
    return MatchRequest(
        idea=body.idea,
        action=body.action,
        applicant=resolved[0] if refs else None,
        applicant_country=body.applicant_country,
        applicant_sector=body.applicant_sector,
        partners=resolved[len(refs) :],
        sectors=body.sectors,
        countries=body.countries,
        exclude_countries=body.exclude_countries,
        k=body.k,
        newcomer_share=body.newcomer_share,
        call_year=body.call_year,
        fairness=body.fairness,
        network_k=body.network_k,
        new_k=body.new_k,
    )


def eligibility_json(e: Eligibility | None) -> dict[str, Any]:
    if e is None:
        return {"eligible": False, "missing": [], "programme_countries": [], "notes": [], "call_year": 0}
    return {
        "eligible": e.eligible,
        "missing": [translate(m) for m in e.missing],
        "programme_countries": e.programme_countries,
        "notes": [translate(n) for n in e.notes],
        "call_year": e.call_year,
    }


def result_json(r: Recommendation) -> dict[str, Any]:
    return {
        "organisation": {
            "id": r.organisation_id,
            "name": r.name,
            "country": r.country,
            "sector": r.sector,
            "newcomer": r.newcomer,
        },
        "score": r.score,
        "reasons": [{**x.as_dict(), "text": translate(x.text)} for x in r.reasons],
        "known_partner": r.known_partner,
        "partner_of_partner": r.partner_of_partner,
        "projects": r.projects,
        "coordinated": r.coordinated,
        "eligibility_with": eligibility_json(r.eligibility_with),
    }


def meta_json(info: IndexInfo) -> dict[str, str]:
    return {"index_version": info.version, "model_id": info.model_id}


def _bad_lookup(exc: LookupError) -> Response:
    """404 naming the field: the request is well formed, but an organisation it names does not exist."""
    message = str(exc).strip("'\"")
    field = message.split(":", 1)[0] if ":" in message else "organisation"
    return error_response(404, "unknown organisation", [{"field": field, "message": message}])


def listed_json(item: Listed, fields: type[BaseModel]) -> dict[str, Any]:
    """A listed organisation with exactly the fields of the response model."""
    values = asdict(item)
    return {k: values[k] for k in fields.model_fields}


@bp.post("/recommendations")
@spec.validate(
    json=RecommendationIn,
    resp=SpecResponse(HTTP_200=RecommendationOut, HTTP_400=ErrorOut, HTTP_404=ErrorOut, HTTP_503=ErrorOut),
    tags=["matching"],
)
def recommendations() -> Response:
    """Ranked complementary partners, with reasons and the consortium's eligibility."""
    body = RecommendationIn.model_validate(request.get_json())
    try:
        found = partner_match().recommend(to_request(body))
    except (LookupError, UnknownOrganisation) as exc:
        return _bad_lookup(exc)
    return jsonify(
        {
            "results": [result_json(r) for r in found.result.results],
            "groups": {
                "network": [result_json(r) for r in found.result.network],
                "new_to_you": [result_json(r) for r in found.result.new_to_you],
            },
            "eligibility": eligibility_json(found.result.eligibility),
            "warnings": [translate(w) for w in found.result.warnings],
            "meta": meta_json(found.index),
        }
    )


@bp.post("/consortia")
@spec.validate(
    json=ConsortiaIn,
    resp=SpecResponse(HTTP_200=ConsortiaOut, HTTP_400=ErrorOut, HTTP_404=ErrorOut, HTTP_503=ErrorOut),
    tags=["matching"],
)
def consortia() -> Response:
    """Alternative complete, eligible consortia mixing known and new partners."""
    body = ConsortiaIn.model_validate(request.get_json())
    try:
        found = partner_match().propose(to_request(body), n=body.n)
    except (LookupError, UnknownOrganisation) as exc:
        return _bad_lookup(exc)
    return jsonify(
        {
            "consortia": [
                {
                    "members": [result_json(m) for m in c.members],
                    "eligibility": eligibility_json(c.eligibility),
                    "newcomers": c.newcomers,
                    "known_partners": c.known_partners,
                }
                for c in found.consortia
            ],
            "meta": meta_json(found.index),
        }
    )


def organisation_query(q: OrganisationsQuery) -> OrganisationQuery:
    return OrganisationQuery(
        OrganisationFilter(
            name=q.q,
            countries=(q.country,) if q.country else (),
            sectors=(q.sector,) if q.sector else (),
            org_types=(q.type,) if q.type else (),
            newcomer=q.newcomer,
        ),
        theme=q.theme,
        page=q.page,
        page_size=PAGE_SIZE,
    )


@bp.get("/organisations")
@spec.validate(
    query=OrganisationsQuery,
    resp=SpecResponse(HTTP_200=OrganisationsOut, HTTP_400=ErrorOut, HTTP_503=ErrorOut),
    tags=["organisations"],
)
def organisations() -> Response:
    """Organisations by name, country, sector, type and newcomer status, 20 a page; ranked by ``theme`` if given."""
    q = OrganisationsQuery.model_validate(request.args.to_dict())
    found: OrganisationPage = partner_match().search(organisation_query(q))
    return jsonify(
        {
            "items": [listed_json(o, OrganisationSummary) for o in found.items],
            "page": found.page,
            "pages": found.pages,
            "total": found.total,
        }
    )


@bp.get("/organisations/<int:org_id>")
@spec.validate(resp=SpecResponse(HTTP_200=OrganisationDetail, HTTP_404=ErrorOut), tags=["organisations"])
def organisation(org_id: int) -> Response:
    """One organisation: profile, experience, past projects, known partners, similar organisations."""
    detail = partner_match().organisation(org_id)
    if detail is None:
        return error_response(404, "organisation not found", [{"field": "id", "message": f"no organisation {org_id}"}])
    return jsonify(detail)


def _account_error(exc: AccountError) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="partner-match"'} if exc.status == 401 else None
    return error_response(
        exc.status,
        {401: "authentication required", 403: "forbidden", 404: "not found"}.get(exc.status, "invalid request"),
        [{"field": exc.field, "message": translate(exc.message)}],
        headers,
    )


@bp.post("/organisations")
@limiter.limit("30/hour", methods=["POST"])
@spec.validate(
    json=RegisterIn,
    resp=SpecResponse(
        HTTP_201=RegisterOut, HTTP_400=ErrorOut, HTTP_401=ErrorOut, HTTP_403=ErrorOut, HTTP_409=ConflictOut
    ),
    tags=["organisations"],
    security={"bearer": []},
)
def register() -> Response:
    """Register an organisation owned by the token's account; it is embedded at once and found by the next search.

    A name that (nearly) matches an organisation in the same country is never overwritten: 409 with the
    existing organisation and its claim route; send ``"different": true`` if yours is another one."""
    body = RegisterIn.model_validate(request.get_json())
    try:
        org_id = partner_match().register(body.model_dump(), token_actor())
    except NameTaken as exc:
        existing = partner_match().organisation(exc.existing) or {"id": exc.existing, "name": ""}
        response = jsonify(
            {
                "error": "organisation exists",
                "detail": [
                    {
                        "field": exc.field,
                        "message": f"{existing['name']} is already registered in this country: "
                        'claim it if it is yours, or send "different": true'
                        if exc.field == "name"
                        else f"{existing['name']} is already registered with this {exc.field.upper()}: "
                        "claim it if it is yours",
                    }
                ],
                "existing": {
                    "id": exc.existing,
                    "name": existing["name"],
                    "url": url_for("api.organisation", org_id=exc.existing),
                    "claim_url": url_for("pages.claim", org_id=exc.existing),
                },
            }
        )
        response.status_code = 409
        return response
    except AccountError as exc:
        return _account_error(exc)
    except ValueError as exc:
        field, _, message = str(exc).partition(": ")
        return error_response(400, "invalid organisation", [{"field": field, "message": message or str(exc)}])
    response = jsonify({"id": org_id, "name": body.name, "url": url_for("api.organisation", org_id=org_id)})
    response.status_code = 201
    return response


@bp.patch("/organisations/<int:org_id>")
@spec.validate(
    json=OrganisationPatch,
    resp=SpecResponse(HTTP_200=PatchOut, HTTP_400=ErrorOut, HTTP_401=ErrorOut, HTTP_403=ErrorOut, HTTP_404=ErrorOut),
    tags=["organisations"],
    security={"bearer": []},
)
def update(org_id: int) -> Response:
    """Change an organisation: its owner's token (or an admin's) only."""
    body = OrganisationPatch.model_validate(request.get_json())
    try:
        changed = partner_match().update_organisation(org_id, body.model_dump(exclude_unset=True), token_actor())
    except AccountError as exc:
        return _account_error(exc)
    except ValueError as exc:
        field, _, message = str(exc).partition(": ")
        return error_response(400, "invalid organisation", [{"field": field, "message": message or str(exc)}])
    return jsonify(
        {"id": org_id, "changed": {k: [str(v) if v is not None else None for v in pair] for k, pair in changed.items()}}
    )


@bp.get("/newcomers")
@spec.validate(
    query=NewcomersQuery,
    resp=SpecResponse(HTTP_200=NewcomersOut, HTTP_400=ErrorOut, HTTP_503=ErrorOut),
    tags=["newcomers"],
    skip_validation=True,
)
def newcomers() -> Response:
    """Organisations new to the programme, by relevance to a theme (by name without one), a page of ``limit``;
    JSON or CSV (``format=csv``: UTF-8 with a byte-order mark, labels, as the page's download)."""
    try:
        q = NewcomersQuery.model_validate(request.args.to_dict())
    except ValidationError as exc:
        return validation_error(exc)
    countries, sectors = [q.country] if q.country else [], [q.sector] if q.sector else []
    found = partner_match().newcomers(q.theme, countries, sectors, page=q.page, page_size=q.limit)
    if q.format == "csv":
        return csv_file(newcomer_table(found), export_name(q.theme, countries, sectors))
    items = [listed_json(o, NewcomerOut) for o in found.items]
    return jsonify({"items": items, "theme": q.theme, "total": found.total, "page": found.page, "pages": found.pages})


@health.get("/livez")
@spec.validate(resp=SpecResponse(HTTP_200=Health), tags=["health"])
def livez() -> Response:
    """The process answers."""
    return jsonify({"status": "ok", "reasons": []})


@health.get("/readyz")
@spec.validate(resp=SpecResponse(HTTP_200=Health, HTTP_503=Health), tags=["health"])
def readyz() -> Response:
    """Database reachable, index loaded and consistent with the database and the configured model."""
    found = partner_match().readiness()
    response = jsonify({"status": found.status, "reasons": found.reasons})
    if not found.ready:
        response.status_code = 503
        response.headers["Retry-After"] = "30"
    return response


def init_app(app: Flask) -> None:
    csrf.exempt(bp)
    csrf.exempt(health)
    app.register_blueprint(bp)
    app.register_blueprint(health)
    app.register_blueprint(apidocs)
    spec.register(app)

    @app.get("/openapi.json")
    def openapi() -> Response:
        """The API's OpenAPI document (pages are not part of it)."""
        document = copy.deepcopy(spec.spec)
        document["paths"] = {
            p: v for p, v in document["paths"].items() if p.startswith("/api/v1/") or p in ("/livez", "/readyz")
        }
        listed = document["paths"]["/api/v1/newcomers"]["get"]["responses"]["200"]["content"]
        listed["text/csv"] = {"schema": {"type": "string", "description": "The same list as CSV (format=csv)"}}
        return jsonify(document)
