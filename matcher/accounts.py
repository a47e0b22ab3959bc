"""Accounts and who may change what: sign-up, verification, passwords, API tokens, ownership, claims,
moderation and the audit log.

The one home of the registry's trust rules: only a verified owner or an admin edits an organisation;
a registration never overwrites another organisation; a claim waits for an admin unless the
verified e-mail's domain is the organisation's website domain; every ownership and moderation
action is written to the audit log with who, when and what changed.

It is long because it is the one home of these rules; split, the rules would have two homes.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from matcher.db import (
    NOT_TEXT,
    SPACE,
    AbuseReport,
    Account,
    ApiToken,
    AuditEntry,
    Claim,
    Database,
    DuplicateCandidate,
    Organisation,
    Participation,
    StoredEmbedding,
    utcnow,
    valid_id,
)
from matcher.mail import Mailer, Message
from matcher.vocab import Text

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 10
VERIFY_MAX_AGE = 3 * 24 * 3600
RESET_MAX_AGE = 3600
EDITABLE = ("name", "description", "website", "city", "org_type", "sector", "contact_name", "contact_email")


class AccountError(ValueError):
    """A request about accounts that cannot be granted; ``field`` names what is wrong."""

    def __init__(self, field: str, message: Text, status: int = 400) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.status = field, message, status


@dataclass(frozen=True)
class Actor:
    """Who is asking: an account id, whether its e-mail is verified, whether it is an admin."""

    id: int
    email: str
    verified: bool
    admin: bool


def actor_of(account: Account) -> Actor:
    return Actor(account.id, account.email, account.verified_at is not None, account.is_admin)


def website_domain(url: str | None) -> str | None:
    if not url:
        return None
    host = urlparse(url if "://" in url else f"https://{url}").hostname or ""
    return host.lower().removeprefix("www.") or None


# An http(s) address, the scheme optional: a host with a dot, an optional port, then a path, query or
# fragment. The API's OpenAPI document states the same pattern.
WEBSITE = (
    f"^(?:[Hh][Tt][Tt][Pp][Ss]?://)?[^{SPACE}/?#@:{NOT_TEXT}]+\\.[^{SPACE}/?#@:.{NOT_TEXT}]+(?::[0-9]{{1,5}})?"
    f"(?:[/?#][^{SPACE}{NOT_TEXT}]*)?$"
)


def safe_url(url: str | None) -> str | None:
    """A website only if it is http(s): no ``javascript:`` or ``data:`` link reaches a page."""
    if not url:
        return None
    if not re.fullmatch(WEBSITE, url):
        raise AccountError("website", Text("must be an http:// or https:// address"))
    return url if re.match("(?i)https?://", url) else f"https://{url}"


def audit(session: Session, actor: Actor | None, action: str, target: str, **details: Any) -> None:
    session.add(AuditEntry(actor_id=actor.id if actor else None, action=action, target=target, details=details))


def can_edit(actor: Actor | None, org: Organisation) -> bool:
    return actor is not None and (actor.admin or (actor.verified and org.owner_id == actor.id))


class Accounts:
    """Account use cases; the front door (``PartnerMatch.accounts``) exposes them to the adapters."""

    def __init__(self, db: Database, mailer: Mailer, secret_key: str, base_url: str = "") -> None:
        self.db, self.mailer, self.base_url = db, mailer, base_url.rstrip("/")
        self._signer = URLSafeTimedSerializer(secret_key, salt="partner-match-accounts")

    # ---------------------------------------------------------------- sign-up, sign-in, passwords
    def sign_up(
        self,
        email: str,
        password: str,
        consent: bool,
        admin: bool = False,
        verified: bool = False,
        base_url: str | None = None,
    ) -> Actor:
        email = email.strip().lower()
        if not EMAIL.match(email) or len(email) > 320:
            raise AccountError("email", Text("is not an e-mail address"))
        if len(password) < MIN_PASSWORD:
            raise AccountError("password", Text("needs at least {n} characters", n=MIN_PASSWORD))
        if not consent:
            raise AccountError("consent", Text("please accept the privacy notice to create an account"))
        with self.db.session() as s:
            if s.scalar(select(Account).where(Account.email == email)) is not None:
                raise AccountError(
                    "email", Text("an account with this e-mail exists: sign in or reset the password"), 409
                )
            account = Account(
                email=email,
                password_hash=generate_password_hash(password, "scrypt"),
                is_admin=admin,
                verified_at=utcnow() if verified else None,
                consent_at=utcnow(),
            )
            s.add(account)
            s.flush()
            actor = actor_of(account)
            audit(s, actor, "account.create", f"account:{account.id}", admin=admin)
        if not verified:
            self.send_verification(actor, base_url)
        return actor

    def send_verification(self, actor: Actor, base_url: str | None = None) -> None:
        token = self._signer.dumps({"verify": actor.id})
        root = (base_url or self.base_url).rstrip("/")
        self.mailer.send(
            Message(
                actor.email,
                "Confirm your e-mail for partner-match",
                f"Open this link to confirm your e-mail address:\n{root}/verify/{token}\n"
                "It works for three days. If you did not sign up, ignore this message.",
            )
        )

    def verify(self, token: str) -> Actor:
        account_id = self._load(token, "verify", VERIFY_MAX_AGE)
        with self.db.session() as s:
            account = s.get(Account, account_id)
            if account is None:
                raise AccountError("token", Text("this account no longer exists"))
            if account.verified_at is None:
                account.verified_at = utcnow()
                audit(s, actor_of(account), "account.verify", f"account:{account.id}")
            return actor_of(account)

    def authenticate(self, email: str, password: str) -> Actor | None:
        with self.db.session() as s:
            account = s.scalar(select(Account).where(Account.email == email.strip().lower()))
            if account is None or not check_password_hash(account.password_hash, password):
                return None
            return actor_of(account)

    def actor(self, account_id: int) -> Actor | None:
        with self.db.session() as s:
            account = s.get(Account, account_id)
            return actor_of(account) if account else None

    def request_reset(self, email: str, base_url: str | None = None) -> None:
        """Mail a reset link if the account exists; say nothing either way (no account probing)."""
        with self.db.session() as s:
            account = s.scalar(select(Account).where(Account.email == email.strip().lower()))
            if account is None:
                return
            token = self._signer.dumps({"reset": account.id, "h": account.password_hash[-12:]})
            to = account.email
        self.mailer.send(
            Message(
                to,
                "Reset your partner-match password",
                f"Open this link within an hour to choose a new password:\n"
                f"{(base_url or self.base_url).rstrip('/')}/reset/{token}\n"
                "If you did not ask for it, ignore this message.",
            )
        )

    def reset(self, token: str, password: str) -> Actor:
        try:
            data = self._signer.loads(token, max_age=RESET_MAX_AGE)
        except (SignatureExpired, BadSignature) as exc:
            raise AccountError("token", Text("this link has expired or is not valid")) from exc
        if len(password) < MIN_PASSWORD:
            raise AccountError("password", Text("needs at least {n} characters", n=MIN_PASSWORD))
        with self.db.session() as s:
            account = s.get(Account, data.get("reset"))
            if account is None or account.password_hash[-12:] != data.get("h"):
                raise AccountError("token", Text("this link has already been used"))
            account.password_hash = generate_password_hash(password, "scrypt")
            audit(s, actor_of(account), "account.reset_password", f"account:{account.id}")
            return actor_of(account)

    def _load(self, token: str, kind: str, max_age: int) -> int:
        try:
            data = self._signer.loads(token, max_age=max_age)
        except SignatureExpired as exc:
            raise AccountError("token", Text("this link has expired: ask for a new one")) from exc
        except BadSignature as exc:
            raise AccountError("token", Text("this link is not valid")) from exc
        if not isinstance(data, dict) or kind not in data:
            raise AccountError("token", Text("this link is not valid"))
        return int(data[kind])

    # ---------------------------------------------------------------- API tokens
    def issue_token(self, actor: Actor, name: str) -> str:
        """A new bearer token, shown once; only its hash is kept."""
        if not actor.verified:
            raise AccountError("account", Text("confirm your e-mail address first"), 403)
        token = "pm_" + secrets.token_urlsafe(32)
        with self.db.session() as s:
            row = ApiToken(account_id=actor.id, name=name.strip()[:100] or "token", token_hash=_digest(token))
            s.add(row)
            s.flush()
            audit(s, actor, "token.issue", f"token:{row.id}", name=row.name)
        return token

    def tokens(self, actor: Actor) -> list[dict[str, Any]]:
        with self.db.session() as s:
            rows = s.scalars(select(ApiToken).where(ApiToken.account_id == actor.id).order_by(ApiToken.id))
            return [
                {"id": t.id, "name": t.name, "created_at": t.created_at, "revoked": t.revoked_at is not None}
                for t in rows
            ]

    def revoke_token(self, actor: Actor, token_id: int) -> None:
        with self.db.session() as s:
            row = s.get(ApiToken, token_id) if valid_id(token_id) else None
            if row is None or row.account_id != actor.id:
                raise AccountError("token", Text("no such token of yours"), 404)
            row.revoked_at = utcnow()
            audit(s, actor, "token.revoke", f"token:{token_id}")

    def actor_for_token(self, token: str) -> Actor | None:
        with self.db.session() as s:
            row = s.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(token), ApiToken.revoked_at.is_(None)))
            account = s.get(Account, row.account_id) if row else None
            return actor_of(account) if account else None

    # ---------------------------------------------------------------- ownership
    def require_editor(self, actor: Actor | None, org_id: int) -> None:
        with self.db.session() as s:
            org = s.get(Organisation, org_id) if valid_id(org_id) else None
            if org is None:
                raise AccountError("id", Text("no organisation {id}", id=org_id), 404)
            if actor is None:
                raise AccountError("account", Text("sign in (or send an API token) to change an organisation"), 401)
            if not actor.verified:
                raise AccountError("account", Text("confirm your e-mail address before editing"), 403)
            if not can_edit(actor, org):
                raise AccountError("account", Text("only the organisation's owner or an admin may change it"), 403)

    def claim(self, actor: Actor, org_id: int) -> dict[str, Any]:
        """Ask to own an organisation: granted at once when the e-mail's domain is its website's."""
        if not actor.verified:
            raise AccountError("account", Text("confirm your e-mail address before claiming"), 403)
        with self.db.session() as s:
            org = s.get(Organisation, org_id) if valid_id(org_id) else None
            if org is None:
                raise AccountError("id", Text("no organisation {id}", id=org_id), 404)
            if org.owner_id == actor.id:
                return {"status": "approved", "reason": "it is already yours"}
            if org.owner_id is not None:
                raise AccountError("organisation", Text("it already has an owner; report it if that is wrong"), 409)
            domain = website_domain(org.website)
            if domain and actor.email.rsplit("@", 1)[1] == domain:
                org.owner_id = actor.id
                claim = Claim(
                    organisation_id=org_id,
                    account_id=actor.id,
                    status="approved",
                    decided_at=utcnow(),
                    reason=f"your verified e-mail is at {domain}, the organisation's website",
                )
            else:
                claim = Claim(
                    organisation_id=org_id,
                    account_id=actor.id,
                    status="pending",
                    reason="an admin of the registry will check it",
                )
            s.add(claim)
            s.flush()
            audit(s, actor, "claim." + claim.status, f"organisation:{org_id}", claim=claim.id)
            return {"status": claim.status, "reason": claim.reason, "id": claim.id}

    def decide_claim(self, admin: Actor, claim_id: int, approve: bool) -> None:
        _require_admin(admin)
        with self.db.session() as s:
            claim = s.get(Claim, claim_id) if valid_id(claim_id) else None
            if claim is None or claim.status != "pending":
                raise AccountError("claim", Text("no pending claim with this id"), 404)
            claim.status, claim.decided_at = ("approved" if approve else "rejected"), utcnow()
            if approve:
                s.execute(
                    update(Organisation)
                    .where(Organisation.id == claim.organisation_id)
                    .values(owner_id=claim.account_id)
                )
            audit(
                s,
                admin,
                f"claim.{claim.status}",
                f"organisation:{claim.organisation_id}",
                claim=claim_id,
                account=claim.account_id,
            )

    # ---------------------------------------------------------------- moderation
    def moderation(self, admin: Actor) -> dict[str, Any]:
        _require_admin(admin)
        with self.db.session() as s:
            emails = dict(s.execute(select(Account.id, Account.email)).all())
            claims = [
                {
                    "id": c.id,
                    "organisation_id": c.organisation_id,
                    "account": emails.get(c.account_id, "?"),
                    "created_at": c.created_at,
                }
                for c in s.scalars(select(Claim).where(Claim.status == "pending").order_by(Claim.id))
            ]
            duplicates = [
                {"id": d.id, "a": d.organisation_a_id, "b": d.organisation_b_id, "score": round(d.score, 1)}
                for d in s.scalars(
                    select(DuplicateCandidate)
                    .where(DuplicateCandidate.status == "open")
                    .order_by(DuplicateCandidate.score.desc())
                    .limit(100)
                )
            ]
            reports = [
                {"id": r.id, "organisation_id": r.organisation_id, "reason": r.reason}
                for r in s.scalars(select(AbuseReport).where(AbuseReport.status == "open"))
            ]
            log = [
                {"at": e.at, "actor_id": e.actor_id, "action": e.action, "target": e.target, "details": e.details}
                for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(100))
            ]
            names = {
                o.id: o.display_name
                for o in s.scalars(
                    select(Organisation).where(
                        Organisation.id.in_(
                            [c["organisation_id"] for c in claims]
                            + [d["a"] for d in duplicates]
                            + [d["b"] for d in duplicates]
                            + [r["organisation_id"] for r in reports]
                        )
                    )
                )
            }
        return {"claims": claims, "duplicates": duplicates, "reports": reports, "log": log, "names": names}

    def report(self, org_id: int, reason: str) -> None:
        if not reason.strip():
            raise AccountError("reason", Text("say what is wrong"))
        with self.db.session() as s:
            if not valid_id(org_id) or s.get(Organisation, org_id) is None:
                raise AccountError("id", Text("no organisation {id}", id=org_id), 404)
            s.add(AbuseReport(organisation_id=org_id, reason=reason.strip()[:2000]))

    def close_report(self, admin: Actor, report_id: int) -> None:
        _require_admin(admin)
        with self.db.session() as s:
            s.execute(update(AbuseReport).where(AbuseReport.id == report_id).values(status="closed"))
            audit(s, admin, "report.close", f"report:{report_id}")

    def set_hidden(self, admin: Actor, org_id: int, hidden: bool) -> None:
        _require_admin(admin)
        with self.db.session() as s:
            s.execute(update(Organisation).where(Organisation.id == org_id).values(hidden=hidden))
            audit(s, admin, "organisation.hide" if hidden else "organisation.show", f"organisation:{org_id}")

    def resolve_duplicate(self, admin: Actor, pair_id: int, merge: bool) -> None:
        """Dismiss a pair, or merge the second into the first: its participations move, its names stay as
        other names, and the audit log keeps a copy of it."""
        _require_admin(admin)
        with self.db.session() as s:
            pair = s.get(DuplicateCandidate, pair_id) if valid_id(pair_id) else None
            if pair is None or pair.status != "open":
                raise AccountError("pair", Text("no open duplicate pair with this id"), 404)
            pair.status = "merged" if merge else "dismissed"
            keep, gone = s.get(Organisation, pair.organisation_a_id), s.get(Organisation, pair.organisation_b_id)
            if not merge or keep is None or gone is None:
                audit(s, admin, "duplicate.dismiss", f"pair:{pair_id}")
                return
            snapshot = {c.name: getattr(gone, c.name) for c in Organisation.__table__.columns}
            have = set(s.scalars(select(Participation.project_id).where(Participation.organisation_id == keep.id)))
            s.execute(
                delete(Participation).where(
                    Participation.organisation_id == gone.id, Participation.project_id.in_(have)
                )
            )
            s.execute(
                update(Participation).where(Participation.organisation_id == gone.id).values(organisation_id=keep.id)
            )
            keep.other_names = sorted({*keep.other_names, *gone.other_names, gone.display_name} - {keep.name})
            keep.pic, keep.oid = keep.pic or gone.pic, keep.oid or gone.oid
            s.execute(
                update(DuplicateCandidate)
                .where(
                    DuplicateCandidate.id != pair_id,
                    (
                        (DuplicateCandidate.organisation_a_id == gone.id)
                        | (DuplicateCandidate.organisation_b_id == gone.id)
                    ),
                )
                .values(status="merged")
            )
            s.execute(delete(StoredEmbedding).where(StoredEmbedding.organisation_id.in_([gone.id, keep.id])))
            s.execute(delete(Claim).where(Claim.organisation_id == gone.id))
            s.execute(delete(AbuseReport).where(AbuseReport.organisation_id == gone.id))
            s.flush()
            s.delete(gone)
            audit(s, admin, "duplicate.merge", f"organisation:{keep.id}", merged=_jsonable(snapshot))

    # ---------------------------------------------------------------- personal data
    def export(self, actor: Actor) -> dict[str, Any]:
        with self.db.session() as s:
            account = s.get(Account, actor.id)
            if account is None:
                raise AccountError("account", Text("no such account"), 404)
            owned = s.scalars(select(Organisation).where(Organisation.owner_id == actor.id))
            return {
                "account": {
                    "email": account.email,
                    "created_at": account.created_at.isoformat(),
                    "verified_at": account.verified_at.isoformat() if account.verified_at else None,
                    "consent_at": account.consent_at.isoformat(),
                    "admin": account.is_admin,
                },
                "organisations": [
                    {
                        "id": o.id,
                        "name": o.display_name,
                        "contact_name": o.contact_name,
                        "contact_email": o.contact_email,
                    }
                    for o in owned
                ],
                "tokens": [
                    {"name": t["name"], "created_at": t["created_at"].isoformat(), "revoked": t["revoked"]}
                    for t in self.tokens(actor)
                ],
            }

    def delete(self, actor: Actor) -> None:
        """Delete the account and its personal data; its organisations stay in the registry, without owner
        or contact."""
        with self.db.session() as s:
            s.execute(
                update(Organisation)
                .where(Organisation.owner_id == actor.id)
                .values(owner_id=None, contact_name=None, contact_email=None)
            )
            s.execute(delete(ApiToken).where(ApiToken.account_id == actor.id))
            s.execute(delete(Claim).where(Claim.account_id == actor.id))
            s.execute(update(AuditEntry).where(AuditEntry.actor_id == actor.id).values(actor_id=None))
            s.execute(delete(Account).where(Account.id == actor.id))
            audit(s, None, "account.delete", f"account:{actor.id}")


def _require_admin(actor: Actor | None) -> None:
    if actor is None or not actor.admin:
        raise AccountError("account", Text("only an admin of the registry may do this"), 403)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in values.items()}
