"""moto's S3 server, with conditional writes made atomic: ``python -m dvd_platform.dev.stack.moto_main -p PORT``.

The raw zone's monthly references are written read-modify-write with ``If-Match`` /
``If-None-Match`` (``dvd_platform/io_managers/raw_refs.py``), which AWS S3 and MinIO
check and apply atomically. moto's threaded server checks the condition and stores the
object in two steps with nothing held in between, so two runs writing one month at
once could both pass and one lose the other's days. Here conditional PUTs go through
one lock; everything else is moto's server as ``python -m moto.server`` runs it (same
application, request handler and log lines).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


def serialize_conditional_puts(app: Callable) -> Callable:
    """The WSGI ``app``, with each PUT that carries a condition handled whole under one lock."""
    lock = threading.Lock()

    def wrapped(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "PUT" and ("HTTP_IF_MATCH" in environ or "HTTP_IF_NONE_MATCH" in environ):
            with lock:
                return list(app(environ, start_response))
        return app(environ, start_response)

    return wrapped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))  # moto builds some URLs from it
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, serialize_conditional_puts(app), threaded=True,
               request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
