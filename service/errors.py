"""One place for errors: JSON under ``/api/`` and the health routes, HTML pages everywhere else."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from matcher.app import IndexUnavailable

RETRY_AFTER = "30"


def N_(message: str) -> str:
    """Marks a message for extraction only: the page translates it, the JSON error keeps it in English."""
    return message


TITLES = {
    400: N_("Bad request"),
    403: N_("Forbidden"),
    404: N_("Not found"),
    405: N_("Method not allowed"),
    413: N_("Request too large"),
    415: N_("Unsupported media type"),
    429: N_("Too many requests"),
    500: N_("Something went wrong"),
    503: N_("Search is not available right now"),
}


def wants_json() -> bool:
    return request.path.startswith(("/api/", "/livez", "/readyz", "/openapi.json"))


def error_response(
    status: int, error: str, detail: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None
) -> Response:
    """The one shape of every JSON error: {"error": ..., "detail": [{"field": ..., "message": ...}]}."""
    response = jsonify({"error": error, "detail": detail or []})
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def error_page(
    status: int, message: str, reasons: list[str] | None = None, headers: dict[str, str] | None = None
) -> Response:
    response = Response(
        render_template("error.html", title=_(TITLES.get(status, "Error")), message=message, reasons=reasons or []),
        status=status,
        mimetype="text/html",
    )
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def unavailable(exc: IndexUnavailable) -> Response:
    """503 with the reasons, in the format the path calls for."""
    headers = {"Retry-After": RETRY_AFTER}
    if wants_json():
        return error_response(
            503, "search index unavailable", [{"field": "index", "message": r} for r in exc.reasons], headers
        )
    return error_page(
        503,
        "The search index is being prepared or could not be loaded. Please try again in a minute.",
        exc.reasons,
        headers,
    )


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    message = str(exc.description or TITLES.get(status, "error"))
    headers = dict(exc.get_headers()) if status == 405 else {}
    headers.pop("Content-Type", None)
    if wants_json():
        field = {404: "path", 405: "method", 413: "body", 429: "rate"}.get(status, "body")
        value = {404: request.path, 405: request.method}.get(status, message)
        named, sep, rest = message.partition(": ")
        if status == 400 and sep and " " not in named:  # "idea: contains a control character"
            field, value = named, rest
        return error_response(
            status, TITLES.get(status, "error").lower(), [{"field": field, "message": value}], headers
        )
    return error_page(status, message, headers=headers)


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(IndexUnavailable, unavailable)
