"""gunicorn settings that share one warm matcher between workers.

``gunicorn -c python:service.gunicorn_conf -b 0.0.0.0:8000 'service:create_app()'``

Two single-threaded workers per core (``-w`` / ``--threads`` or ``WEB_CONCURRENCY`` override them).
A request is numpy work over the registry: threads in one worker take turns on one interpreter, so
with ``bench/bench_load.py`` (8 clients, 37,513 organisations, 2 cores) two workers of four threads
served 74-89 requests/s at p99 297-377 ms, single-threaded workers 91-99 requests/s at p99 168-214
ms. Two per core rather than one: a worker waiting on something slow (a mail relay, up to its 10 s
timeout) leaves the others serving, at the same throughput (4 x 1 against 2 x 1, within noise).

The app is created in gunicorn's master (``preload_app``), which loads the model, the serving index
and the matcher before forking: the workers share those pages copy-on-write instead of each
building its own, and no worker's first search waits for a build. A worker still rebuilds or
refreshes its own matcher when the registry or the index changes.
"""

from __future__ import annotations

import os
from typing import Any

from threadpoolctl import threadpool_limits

preload_app = True
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * len(os.sched_getaffinity(0)))
threads = 1


def _partner_match(server: Any) -> Any:
    return server.app.wsgi().extensions["partner_match"]


def when_ready(server: Any) -> None:
    server.log.info("partner-match warmed before forking workers: %s", _partner_match(server).warm())


def post_fork(server: Any, worker: Any) -> None:
    _partner_match(server).after_fork()
    # numpy's products (the idea against every profile and project vector) on one thread: with two
    # cores shared by several workers, a second BLAS thread only spins while other requests wait
    # (bench_load, 4 x 1 workers: p99 125-139 ms against 166-189 ms, same requests/s)
    threadpool_limits(limits=1, user_api="blas")
