"""Run the app with uvicorn on a socket bound first, so port 0 means "a free port" and the URL is known.

    with serve_in_thread(app) as url:     # tests, benchmarks: http://127.0.0.1:<free port>
        httpx.get(url + "/health")
    serve_forever(app, "127.0.0.1", 8000)  # `bertforge serve`: until Ctrl-C
"""
from __future__ import annotations

import ipaddress
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Optional

__all__ = ["bind", "is_loopback", "serve_forever", "serve_in_thread", "url_of"]

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    """True when only this machine can reach `host` (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free port chosen by the OS); a clear error when taken."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as e:
        raise ValueError(f"cannot bind to host {host!r}: {e.strerror} (use an address such as 127.0.0.1)") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        hint = " (another program uses it: choose another --port, or --port 0 for a free one)" \
            if e.errno in (98, 48) else ""
        raise ValueError(f"cannot listen on {host}:{port}: {e.strerror}{hint}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _server(app, log_level: str, access_log: bool):
    import uvicorn

    config = uvicorn.Config(app, log_level=log_level, access_log=access_log, lifespan="on",
                            timeout_graceful_shutdown=5)
    return uvicorn.Server(config)


@contextmanager
def serve_in_thread(app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning",
                    startup_timeout: float = 60.0) -> Iterator[str]:
    """Serve `app` from a background thread; yields its base URL; stops the server (and its inference
    worker) on exit."""
    sock = bind(host, port)
    server = _server(app, log_level, access_log=False)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="bertforge-uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start (see the log above)")
            time.sleep(0.01)
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def serve_forever(app, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
                  access_log: bool = True, announce: Optional[Callable[[str], None]] = None) -> None:
    """Serve until Ctrl-C: uvicorn shuts down gracefully (running requests finish), then this returns."""
    sock = bind(host, port)
    url = url_of(sock)
    (announce or (lambda u: print(f"bertforge serve: open {u}/ (Ctrl-C to stop)", file=sys.stderr, flush=True)))(url)
    try:
        _server(app, log_level, access_log).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled; stopping is the normal end here
        pass
    finally:
        sock.close()
