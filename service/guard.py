"""Input every request must pass before a view sees it: no control characters, bounded JSON.

One check for every field of every form, query string and JSON body, so a NUL byte or a deeply
nested document is a 400 that names the field, never a database error (PostgreSQL refuses NUL in
text) or a crash.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask, abort, request

from matcher.app import NOT_TEXT

CONTROL = re.compile(f"[{NOT_TEXT}\\ud800-\\udfff]")  # and lone surrogates, which have no UTF-8 form
MAX_DEPTH = 8


def _check_text(field: str, value: str) -> None:
    if CONTROL.search(value):
        abort(400, f"{field}: contains a control character (such as a NUL byte) or a lone surrogate, which is not text")


def _walk(value: Any, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        abort(400, f"{path or 'body'}: JSON nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        _check_text(path or "body", value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(f"{path}.{key}" if path else str(key), str(key))
            _walk(item, f"{path}.{key}" if path else str(key), depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, f"{path}.{i}" if path else str(i), depth + 1)


def check_request() -> None:
    for field, value in request.args.items(multi=True):
        _check_text(field, value)
    if request.method in ("POST", "PUT", "PATCH"):
        if request.mimetype == "application/json":
            raw = request.get_data().strip()
            body = request.get_json(silent=True)
            if body is None and raw and raw != b"null":
                abort(400, "body: is not valid JSON")
            if raw == b"null" or (body is not None and not isinstance(body, dict)):
                abort(400, "body: must be a JSON object")
            _walk(body, "", 0)
        else:
            for field, value in request.form.items(multi=True):
                _check_text(field, value)


def init_app(app: Flask) -> None:
    app.before_request(check_request)
