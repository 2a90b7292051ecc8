"""Shared by the real-client checks in scripts/clients/ (run by scripts/clients/run.sh).

Importing this module first installs a network guard: any attempt by the process to
resolve or connect to a host other than 127.0.0.1 raises `ForeignHost` and is recorded,
so a client that quietly falls back to a cloud host (UiPath's SDK pins some flows to
UiPath's own identity server) fails the check even where the library swallows the
error. `finish()` fails on any such attempt.

The server and its seeded data reach the checks as environment variables set by run.sh:
UPLIFT_BASE (http://127.0.0.1:PORT), UPLIFT_ORG, UPLIFT_TENANT, UPLIFT_FOLDER_KEY,
UPLIFT_FOLDER_ID, UPLIFT_CLIENT_ID, UPLIFT_CLIENT_SECRET, UPLIFT_SCOPE.
"""

import os
import socket
import sys
import traceback

ALLOWED_HOSTS = {"127.0.0.1"}
attempts: list[str] = []


class ForeignHost(ConnectionRefusedError):
    """A connection or name lookup for a host other than 127.0.0.1."""


def _refuse(what: str, host) -> None:
    note = f"{what} {host!r}"
    attempts.append(note)
    raise ForeignHost(f"network guard: {note} refused (only 127.0.0.1 is allowed)")


def _check_address(sock, address, what: str) -> None:
    if getattr(sock, "family", None) == getattr(socket, "AF_UNIX", object()):
        return
    host = address[0] if isinstance(address, tuple) else address
    if host not in ALLOWED_HOSTS:
        _refuse(what, host)


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo
_create_connection = socket.create_connection
_gethostbyname = socket.gethostbyname


def _guarded_connect(self, address):
    _check_address(self, address, "connect to")
    return _connect(self, address)


def _guarded_connect_ex(self, address):
    _check_address(self, address, "connect to")
    return _connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if name not in ALLOWED_HOSTS:
        _refuse("look up", name)
    return _getaddrinfo(host, *args, **kwargs)


def _guarded_create_connection(address, *args, **kwargs):
    if address[0] not in ALLOWED_HOSTS:
        _refuse("connect to", address[0])
    return _create_connection(address, *args, **kwargs)


def _guarded_gethostbyname(name):
    if name not in ALLOWED_HOSTS:
        _refuse("look up", name)
    return _gethostbyname(name)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex
socket.getaddrinfo = _guarded_getaddrinfo
socket.create_connection = _guarded_create_connection
socket.gethostbyname = _guarded_gethostbyname

# No proxy may carry a request elsewhere, and none is needed for 127.0.0.1.
for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(name, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1"

BASE = os.environ["UPLIFT_BASE"]
ORG = os.environ["UPLIFT_ORG"]
TENANT = os.environ["UPLIFT_TENANT"]
FOLDER_KEY = os.environ["UPLIFT_FOLDER_KEY"]
FOLDER_ID = os.environ["UPLIFT_FOLDER_ID"]
CLIENT_ID = os.environ["UPLIFT_CLIENT_ID"]
CLIENT_SECRET = os.environ["UPLIFT_CLIENT_SECRET"]
SCOPE = os.environ["UPLIFT_SCOPE"]
TOKEN_URL = f"{BASE}/identity_/connect/token"
UIPATH_BASE_PATH = f"/{ORG}/apps_/default/api/v1/default"

checks: list[str] = []


def check(condition, what: str, detail=None) -> None:
    """Records a passed check; raises AssertionError with `detail` when it fails."""
    if not condition:
        raise AssertionError(f"{what}: {detail!r}" if detail is not None else what)
    checks.append(what)
    print(f"  ok  {what}", flush=True)


def run(name: str, main) -> None:
    """Runs `main()`, then fails if anything tried to leave 127.0.0.1."""
    print(f"== {name}", flush=True)
    try:
        main()
    except Exception:
        traceback.print_exc()
        print(f"{name}: FAILED", file=sys.stderr)
        sys.exit(1)
    if attempts:
        print(f"{name}: FAILED, the client tried to reach other hosts: {attempts}", file=sys.stderr)
        sys.exit(1)
    print(f"{name}: {len(checks)} passed, 0 failed", flush=True)
