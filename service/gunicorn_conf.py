"""gunicorn settings that share one warm matcher between workers.

``gunicorn -c python:service.gunicorn_conf -w 2 --threads 4 -b 0.0.0.0:8000 'service:create_app()'``

The app is created in gunicorn's master (``preload_app``), which loads the model, the serving index
and the matcher before forking: the workers share those pages copy-on-write instead of each
building its own, and no worker's first search waits for a build. A worker still rebuilds or
refreshes its own matcher when the registry or the index changes.
"""

from __future__ import annotations

from typing import Any

preload_app = True


def _partner_match(server: Any) -> Any:
    return server.app.wsgi().extensions["partner_match"]


def when_ready(server: Any) -> None:
    server.log.info("partner-match warmed before forking workers: %s", _partner_match(server).warm())


def post_fork(server: Any, worker: Any) -> None:
    _partner_match(server).after_fork()
