"""The API's request and response models (pydantic): validation and the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from matcher import vocab
from matcher.app import MAX_ID
from matcher.fairness import FairConfig

MAX_IDEA = 5000
MAX_K = 100


def _check_countries(values: list[str]) -> list[str]:
    out = []
    for v in values:
        code = vocab.normalise_country(v)  # UnknownCode is a ValueError: pydantic reports it
        if code:
            out.append(code)
    return out


def _check_sectors(values: list[str]) -> list[str]:
    return [vocab.check_sector(v) for v in values]


OrgRef = Annotated[int, Field(ge=1, le=MAX_ID)] | Annotated[str, Field(pattern=r"^[0-9]{6,12}$")]


class RecommendationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # no true for 1, no "10" for 10
    idea: str = Field("", max_length=MAX_IDEA, description="The project idea, free text")
    action: Literal["cooperation", "small-scale", "school"] = "cooperation"
    applicant: OrgRef | None = Field(None, description="Organisation id (integer) or PIC (string of digits)")
    partners: list[OrgRef] = Field(default_factory=list, max_length=50)
    sectors: list[str] = Field(default_factory=list, max_length=10)
    countries: list[str] = Field(default_factory=list, max_length=60)
    exclude_countries: list[str] = Field(default_factory=list, max_length=60)
    k: int = Field(10, ge=1, le=MAX_K)
    newcomer_share: float = Field(FairConfig.share, ge=0.0, le=1.0)
    call_year: int | None = Field(None, ge=2014, le=2035, description="The call applied to (default: the next one)")
    fairness: Literal["quota", "significance"] = Field(
        "quota",
        description="quota: about newcomer_share of the results are newcomers; significance: FA*IR's adjusted "
        "test at alpha 0.1, which asks for fewer",
    )

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
    missing: list[str] = Field(description="Every unmet rule of the Programme Guide, in words")
    programme_countries: list[str] = Field(description="EU Member States and associated countries counted")
    notes: list[str] = Field(description="Why a member does not count, and rules to know about")
    call_year: int


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
    warnings: list[str] = Field(default_factory=list, description="Why the request cannot be met as asked")
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
    contact_name: str | None
    contactable: bool = Field(description="A message can be sent through the contact form")
    owned: bool = Field(description="A verified account owns it; otherwise it can be claimed")
    editable: bool
    hidden: bool


def _http_url(value: str | None) -> str | None:
    """Websites are http(s) only: no ``javascript:`` link ever reaches a page."""
    from urllib.parse import urlparse

    if value is None or not value.strip():
        return None
    parsed = urlparse(value if "://" in value else f"https://{value}")
    if parsed.scheme not in ("http", "https") or not parsed.hostname or "." not in parsed.hostname:
        raise ValueError("must be an http:// or https:// address")
    return value


class RegisterIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(..., min_length=2, max_length=300)
    description: str = Field(..., min_length=20, max_length=MAX_IDEA)
    country: str = Field(..., max_length=60)
    sector: str
    organisation_type: str | None = Field(None, max_length=300)
    city: str | None = Field(None, max_length=200)
    website: str | None = Field(None, max_length=300)
    pic: str | None = Field(None, pattern=r"^[0-9]{9}$")
    contact_name: str | None = Field(None, max_length=200, description="Published on the organisation's page")
    contact_email: str | None = Field(
        None,
        max_length=320,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="Never shown: the contact form relays messages to it",
    )
    different: bool = Field(False, description="Register even though a similar name exists in the country")

    @field_validator("country")
    @classmethod
    def _country(cls, v: str) -> str:
        code = vocab.normalise_country(v)
        if code is None:
            raise ValueError("a country is required")
        return code

    _sector = field_validator("sector")(vocab.check_sector)
    _website = field_validator("website")(_http_url)


class OrganisationPatch(BaseModel):
    """The fields an owner may change; absent fields stay as they are."""

    model_config = ConfigDict(extra="forbid", strict=True)
    name: str | None = Field(None, min_length=2, max_length=300)
    description: str | None = Field(None, max_length=MAX_IDEA)
    website: str | None = Field(None, max_length=300)
    city: str | None = Field(None, max_length=200)
    org_type: str | None = Field(None, max_length=300)
    sector: str | None = None
    contact_name: str | None = Field(None, max_length=200)
    contact_email: str | None = Field(None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

    _sector = field_validator("sector")(lambda v: vocab.check_sector(v) if v is not None else None)
    _website = field_validator("website")(_http_url)


class PatchOut(BaseModel):
    id: int
    changed: dict[str, list[Any]]


class ConflictOut(BaseModel):
    error: str
    detail: list[dict[str, Any]]
    existing: dict[str, Any]


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
    status: Literal["ok", "degraded", "unavailable"]
    reasons: list[str] = Field(default_factory=list, description="Why unavailable, or what is degraded")
