"""Settings from the environment, the same for every command and for the web service."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from exc


@dataclass(frozen=True)
class Settings:
    instance_dir: Path
    database_url: str
    index_dir: Path
    ranker_dir: Path | None = None
    secret_key: str | None = None
    ratelimit_storage_uri: str = "memory://"
    newcomer_max_projects: int = 0
    newcomer_programmes: str = "erasmus"
    exact_search_max: int = 200_000
    encoder: str = "e5"
    rate_limit: str = "600/minute"
    smtp_url: str | None = None
    mail_sender: str = "partner-match@localhost"
    base_url: str = ""
    environment: str = "development"
    proxy_count: int = 0  # reverse proxies in front: their X-Forwarded-* headers are trusted
    secure_cookies: bool | None = None  # None: on in production
    csrf_minutes: int = 120
    model_threads: int = 1  # threads one model call may use in a web worker (its other threads serve requests)

    @property
    def production(self) -> bool:
        """Production when said so, or when a secret key is configured (nobody sets one for a demo)."""
        return self.environment == "production" or bool(self.secret_key)

    @property
    def ranker_path(self) -> Path:
        """Where the fitted ranker lives (``ranker_dir`` when set, else inside the instance folder)."""
        return self.ranker_dir or self.instance_dir / "ranker"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        instance = Path(env.get("PARTNER_MATCH_INSTANCE_DIR") or Path.cwd() / "instance").resolve()
        return cls(
            instance_dir=instance,
            database_url=env.get("PARTNER_MATCH_DATABASE_URL") or f"sqlite:///{instance / 'partner-match.sqlite'}",
            index_dir=Path(env.get("PARTNER_MATCH_INDEX_DIR") or instance / "index").resolve(),
            ranker_dir=Path(env.get("PARTNER_MATCH_RANKER_DIR") or instance / "ranker").resolve(),
            secret_key=env.get("PARTNER_MATCH_SECRET_KEY") or None,
            ratelimit_storage_uri=env.get("PARTNER_MATCH_RATELIMIT_STORAGE_URI") or "memory://",
            newcomer_max_projects=_int(env, "PARTNER_MATCH_NEWCOMER_MAX_PROJECTS", 0),
            newcomer_programmes=env.get("PARTNER_MATCH_NEWCOMER_PROGRAMMES") or "erasmus",
            exact_search_max=_int(env, "PARTNER_MATCH_EXACT_SEARCH_MAX", 200_000),
            encoder=env.get("PARTNER_MATCH_ENCODER") or "e5",
            rate_limit=env.get("PARTNER_MATCH_RATE_LIMIT") or "600/minute",
            smtp_url=env.get("PARTNER_MATCH_SMTP_URL") or None,
            mail_sender=env.get("PARTNER_MATCH_MAIL_FROM") or "partner-match@localhost",
            base_url=env.get("PARTNER_MATCH_BASE_URL") or "",
            environment=env.get("PARTNER_MATCH_ENV") or "development",
            proxy_count=_int(env, "PARTNER_MATCH_PROXY_FIX", 0),
            secure_cookies={"1": True, "true": True, "0": False, "false": False}.get(
                (env.get("PARTNER_MATCH_SECURE_COOKIES") or "").lower()
            ),
            csrf_minutes=_int(env, "PARTNER_MATCH_CSRF_MINUTES", 120),
            model_threads=_int(env, "PARTNER_MATCH_MODEL_THREADS", 1),
        )
