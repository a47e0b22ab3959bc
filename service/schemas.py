"""The API's request and response models (pydantic): validation and the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from matcher import vocab
from matcher.app import MAX_ID, NOT_TEXT, SPACE, WEBSITE
from matcher.fairness import FairConfig

MAX_IDEA = 5000
MAX_K = 100

# The document states exactly what is accepted (schemathesis checks both directions): text without
# control characters, names with a visible character, country and sector codes as enums.
TEXT = f"^[^{NOT_TEXT}]*$"
_VISIBLE = f"[^{NOT_TEXT}{SPACE}\\u00ad\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064]"
NAME = f"^[^{NOT_TEXT}]*{_VISIBLE}[^{NOT_TEXT}]*$"
EMAIL_PATTERN = f"^[^@{SPACE}{NOT_TEXT}]+@[^@{SPACE}{NOT_TEXT}]+\\.[^@{SPACE}{NOT_TEXT}]+$"


def _integral(value: Any) -> Any:
    """JSON Schema's integer admits 7.0: take a whole float as the integer, nothing else (no true for 1)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _country_code(value: str) -> str:
    if value not in vocab.country_codes():
        raise ValueError(f"unknown country code {value!r}; expected an ISO 3166 alpha-2 code such as NO or PL")
    return vocab.normalise_country(value) or value


def _text(**kw: Any) -> Any:
    return Field(json_schema_extra={"pattern": TEXT}, **kw)


# Bounded integers; the bounds stand before the validator, so the document states them as minimum/maximum.
Whole = BeforeValidator(_integral)
Id = Annotated[int, Field(ge=1, le=MAX_ID), Whole]
K = Annotated[int, Field(ge=1, le=MAX_K), Whole]
CallYear = Annotated[int, Field(ge=2014, le=2035), Whole]
Proposals = Annotated[int, Field(ge=1, le=5), Whole]
Page = Annotated[int, Field(ge=1, le=10_000), Whole]
Limit = Annotated[int, Field(ge=1, le=500), Whole]
GroupSize = Annotated[int, Field(ge=0, le=50), Whole]

Country = Annotated[
    str, AfterValidator(_country_code), WithJsonSchema({"type": "string", "enum": list(vocab.country_codes())})
]
Sector = Annotated[
    str, AfterValidator(vocab.check_sector), WithJsonSchema({"type": "string", "enum": list(vocab.sectors())})
]
OrgRef = Id | Annotated[str, Field(pattern=r"^[0-9]{6,12}$")]


class RecommendationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # no true for 1, no "10" for 10
    idea: str = _text(default="", max_length=MAX_IDEA, description="The project idea, free text")
    action: Literal["cooperation", "small-scale", "school"] = "cooperation"
    applicant: OrgRef | None = Field(None, description="Organisation id (integer) or PIC (string of digits)")
    applicant_country: Country | None = Field(
        None,
        description="An applicant not in the registry: its country (with applicant_sector; ignored with applicant)",
    )
    applicant_sector: Sector | None = Field(None, description="An applicant not in the registry: its sector")
    partners: list[OrgRef] = Field(default_factory=list, max_length=50)
    sectors: list[Sector] = Field(default_factory=list, max_length=10)
    countries: list[Country] = Field(default_factory=list, max_length=60)
    exclude_countries: list[Country] = Field(default_factory=list, max_length=60)
    k: K = 10
    network_k: GroupSize = Field(5, description='How many "from your network" (known partners, partners of partners)')
    new_k: GroupSize = Field(10, description='How many "new to you" (nobody in the consortium has worked with them)')
    newcomer_share: float = Field(FairConfig.share, ge=0.0, le=1.0)
    call_year: CallYear | None = Field(None, description="The call applied to (default: the next one)")
    fairness: Literal["quota", "significance"] = Field(
        "quota",
        description="quota: about newcomer_share of the results are newcomers; significance: FA*IR's adjusted "
        "test at alpha 0.1, which asks for fewer",
    )


class ConsortiaIn(RecommendationIn):
    n: Proposals = 3


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


class GroupsOut(BaseModel):
    network: list[ResultOut] = Field(description="Known partners and partners of partners, with the shared project")
    new_to_you: list[ResultOut] = Field(
        description="Relevant to the idea, complementary, nobody in the consortium has worked with them; "
        "the newcomer share is held here"
    )


class RecommendationOut(BaseModel):
    results: list[ResultOut] = Field(description="One ranked list of k (both groups mixed), as before")
    groups: GroupsOut
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
    q: str = _text(default="", max_length=200, description="Part of the name")
    theme: str = _text(default="", max_length=MAX_IDEA, description="Rank by similarity of the profile to this text")
    country: Country | None = None
    sector: Sector | None = None
    type: str | None = _text(default=None, max_length=300)
    newcomer: bool | None = None
    page: Page = 1


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


class RegisterIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, regex_engine="python-re")
    name: str = Field(..., min_length=2, max_length=300, pattern=NAME)
    description: str = _text(min_length=20, max_length=MAX_IDEA)
    country: Country
    sector: Sector
    organisation_type: str | None = _text(default=None, max_length=300)
    city: str | None = _text(default=None, max_length=200)
    website: str | None = Field(None, max_length=300, pattern=WEBSITE)
    pic: str | None = Field(None, pattern=r"^[0-9]{9}$")
    contact_name: str | None = _text(default=None, max_length=200, description="Published on the organisation's page")
    contact_email: str | None = Field(
        None,
        max_length=320,
        pattern=EMAIL_PATTERN,
        description="Never shown: the contact form relays messages to it",
    )
    different: bool = Field(False, description="Register even though a similar name exists in the country")


class OrganisationPatch(BaseModel):
    """The fields an owner may change; absent fields stay as they are."""

    model_config = ConfigDict(extra="forbid", strict=True, regex_engine="python-re")
    name: str = Field(None, min_length=2, max_length=300, pattern=NAME, validate_default=False)  # type: ignore[assignment]  # absent, never null
    description: str | None = _text(default=None, max_length=MAX_IDEA)
    website: str | None = Field(None, max_length=300, pattern=WEBSITE)
    city: str | None = _text(default=None, max_length=200)
    org_type: str | None = _text(default=None, max_length=300)
    sector: Sector = Field(None, validate_default=False)  # type: ignore[assignment]  # absent, never null
    contact_name: str | None = _text(default=None, max_length=200)
    contact_email: str | None = Field(None, max_length=320, pattern=EMAIL_PATTERN)


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
    theme: str = _text(default="", max_length=MAX_IDEA)
    country: Country | None = None
    sector: Sector | None = None
    limit: Limit = 50
    page: Page = 1
    format: Literal["json", "csv"] = "json"


class NewcomerOut(OrganisationListed):
    website: str | None
    score: float | None = Field(description="Relevance to the theme; null without a theme")
    description: str | None


class NewcomersOut(BaseModel):
    items: list[NewcomerOut]
    theme: str
    total: int
    page: int
    pages: int


class Health(BaseModel):
    status: Literal["ok", "degraded", "unavailable"]
    reasons: list[str] = Field(default_factory=list, description="Why unavailable, or what is degraded")
