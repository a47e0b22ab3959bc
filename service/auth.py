"""Who is asking: a signed-in account (Flask-Login session cookie) or an API token (``Authorization: Bearer``).

Pages use the session; the API accepts only bearer tokens for writes, so a browser's cookie can never
write through the CSRF-exempt API.
"""

from __future__ import annotations

from flask import Flask, abort, request
from flask_login import LoginManager, UserMixin, current_user

from matcher.app import Actor
from service.state import partner_match

login_manager = LoginManager()
login_manager.login_view = "accounts.login"
login_manager.login_message = "Please sign in first."


class User(UserMixin):
    """Flask-Login's view of an account: only its id is kept in the session."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        self.id = actor.id


@login_manager.user_loader
def _load(user_id: str) -> User | None:
    actor = partner_match().accounts.actor(int(user_id)) if user_id.isdigit() else None
    return User(actor) if actor else None


def page_actor() -> Actor | None:
    """The signed-in account of a page request."""
    return current_user.actor if current_user.is_authenticated else None


def signed_in() -> Actor:
    """The signed-in account of a page that requires one (``login_required`` has checked)."""
    actor = page_actor()
    if actor is None:
        abort(401)
    return actor


def token_actor() -> Actor | None:
    """The account an API request's bearer token belongs to (None without a valid, unrevoked token)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return partner_match().accounts.actor_for_token(token.strip())


def own_path(target: str | None) -> str | None:
    """``target`` if it is a path on this site, else None: a form's ``next`` never leads elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
