"""The partner-match web service: ``create_app()`` for Flask and gunicorn."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect

from service.config import Settings

if TYPE_CHECKING:
    from matcher.app import Encoder

csrf = CSRFProtect()
# limits are read from the app being served, so each app (and test) can set its own
limiter = Limiter(
    key_func=get_remote_address, default_limits=[lambda: str(current_app.config["PARTNER_MATCH_RATE_LIMIT"])]
)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def _secret_key(settings: Settings) -> str:
    """The configured key, else one kept in the instance folder so workers and restarts agree."""
    if settings.secret_key:
        return settings.secret_key
    path = settings.instance_dir / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _configure(app: Flask, settings: Settings, config: Mapping[str, Any] | None) -> None:
    """Flask settings from ours; in production, refuse what would be unsafe (per-worker rate limits)."""
    secure = settings.production if settings.secure_cookies is None else settings.secure_cookies
    if settings.proxy_count:  # behind N reverse proxies: client address and scheme from their headers
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.proxy_count, x_proto=settings.proxy_count, x_host=settings.proxy_count
        )
    app.config.from_mapping(
        SECRET_KEY=None,
        MAX_CONTENT_LENGTH=512 * 1024,
        RATELIMIT_STORAGE_URI=settings.ratelimit_storage_uri,
        PARTNER_MATCH_RATE_LIMIT=settings.rate_limit,
        RATELIMIT_ENABLED=True,
        RATELIMIT_HEADERS_ENABLED=True,
        PARTNER_MATCH_SETTINGS=settings,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=secure,
        REMEMBER_COOKIE_SECURE=secure,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=settings.csrf_minutes * 60,
    )
    if config:
        app.config.update(config)
    if settings.production and str(app.config["RATELIMIT_STORAGE_URI"]).startswith("memory://"):
        raise SystemExit(
            "partner-match runs in production (PARTNER_MATCH_ENV=production or a secret key is set) "
            "but rate limits are kept in each worker's memory, so N workers allow N times the limit: "
            "set PARTNER_MATCH_RATELIMIT_STORAGE_URI=redis://host:6379/0"
        )
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key(settings)


def security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "strict-origin-when-cross-origin"
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    if response.status_code not in (429, 503):  # the rate limiter adds it to every response
        response.headers.pop("Retry-After", None)
    return response


def create_app(
    settings: Settings | None = None, encoder: Encoder | None = None, config: Mapping[str, Any] | None = None
) -> Flask:
    """The web service for ``settings`` (default: from the environment); ``encoder`` replaces the configured one.

    ``config`` overrides Flask settings (tests: ``TESTING``, ``RATELIMIT_ENABLED``...).
    """
    settings = settings or Settings.from_env()
    app = Flask(__name__, instance_path=str(settings.instance_dir))
    _configure(app, settings, config)

    from service import accounts, admin, api, auth, errors, guard, i18n, pages, state

    state.init_app(app, encoder)
    errors.init_app(app)
    guard.init_app(app)
    limiter.init_app(app)  # before CSRF: a flood of forged forms is throttled too
    csrf.init_app(app)
    auth.init_app(app)
    api.init_app(app)
    i18n.init_app(app)
    pages.init_app(app)
    accounts.init_app(app)
    admin.init_app(app)
    app.after_request(security_headers)
    return app
