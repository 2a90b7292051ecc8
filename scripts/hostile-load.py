#!/usr/bin/env python3
"""Hostile load against one uplift process: oversized bodies, a million ids, slow
clients, huge headers and deep nesting, all at once, with the probes of issue 20
(invented HTTP methods, log injection, Basic secrets with `&`, control characters in
token claims, `crit` headers and endless `exp`, tags with commas, oversized Rainbond
POSTs, forged X-Forwarded-Host, malformed request lines, a token-request flood, keyed
requests that must be refused before any record is written, a key reused for another
folder). Prints the server's resident memory at rest and at peak, the answers it gave,
and how fast /healthz answered meanwhile. Exits non-zero on any 5xx, an unhealthy
server, a peak above 100 MiB beside the binary's mapped code, a metrics label taken from a request, a forged or raw-ESC
log line, an ERROR log line, a forged @odata.context, an idempotency record written for
a refused request, or a key replayed for another folder.

Usage: scripts/hostile-load.py [path/to/uplift] [seconds]
"""
import atexit
import base64
import concurrent.futures as cf
import hashlib
import hmac
import itertools
import json
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reliability"))
from common import SECRET, Server  # noqa: E402

binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/debug/uplift")
duration = float(sys.argv[2]) if len(sys.argv) > 2 else 20
# SQLite in the server's own directory; raises with the server's log if it never gets ready.
server = Server(binary, body_timeout_seconds=5)
atexit.register(server.stop)  # not left running when the script fails midway
server.start()
port, base = server.port, server.base


def memory(field):
    with open(f"/proc/{server.process.pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) // 1024
    return -1


run = server.cli


tenant = "hostile"
folder = run("folder", "create", "--tenant", tenant, "--name", "Ops")
run("role", "assign", "--tenant", tenant, "--subject", "bot", "--role", "FolderAdministrator", "--folder", folder)
token = run("token", "--tenant", tenant, "--subject", "bot")
other_folder = run("folder", "create", "--tenant", tenant, "--name", "Prod")
run("role", "assign", "--tenant", tenant, "--subject", "bot", "--role", "FolderAdministrator", "--folder", other_folder)
# A valid token with no scope and no role: nothing it sends may leave a record.
nobody = run("token", "--tenant", tenant, "--subject", "nobody", "--scope", "Apps")
path = "/local/apps_/default/api/v1/default/models/deployed/apps/updateToLatestAppVersionBulk"
headers = f"Host: x\r\nAuthorization: Bearer {token}\r\nX-UiPath-Internal-TenantId: {tenant}\r\nX-UiPath-FolderKey: {folder}\r\n"
rest_rss = memory("VmRSS")
# The binary's own code pages (file-backed: 38 MiB of a debug build with debuginfo,
# a fraction of that in release) count in RSS but do not grow with what clients
# send; the bound is on the memory the requests can make the server take.
code_rss = memory("RssFile")
statuses, lock = {}, threading.Lock()
deadline = time.time() + duration


def raw(request: bytes, trickle: bytes = b"", per_byte: float = 0.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        s.sendall(request)
        for b in trickle:
            try:
                s.sendall(bytes([b]))
            except OSError:
                break  # the server answered and closed: read what it said
            time.sleep(per_byte)
        answer = s.recv(64)
        status = answer.split(b" ")[1].decode() if answer.startswith(b"HTTP/1.1") else "closed"
    except OSError:
        status = "closed"
    finally:
        s.close()
    with lock:
        statuses[status] = statuses.get(status, 0) + 1


million = json.dumps({"deploymentIds": [f"{i:08}" for i in range(1_000_000)]}).encode()
nested = b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b', "deploymentIds": []}'
attacks = {
    "a million ids": lambda: raw(f"POST {path} HTTP/1.1\r\n{headers}Content-Type: application/json\r\nContent-Length: {len(million)}\r\n\r\n".encode() + million[:65536]),
    "deep nesting": lambda: raw(f"POST {path} HTTP/1.1\r\n{headers}Content-Type: application/json\r\nContent-Length: {len(nested)}\r\n\r\n".encode() + nested),
    "64 KB header": lambda: raw(f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {'p' * 65536}\r\n\r\n".encode()),
    "invalid UTF-8": lambda: raw(f"POST {path} HTTP/1.1\r\n{headers}Content-Type: application/json\r\nContent-Length: 22\r\n\r\n".encode() + b'{"deploymentIds":["\xff"]}'),
    "one byte per second": lambda: raw(f"POST {path} HTTP/1.1\r\n{headers}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n".encode(), b" " * 100, 1.0),
}


def hs256(claims, **header):
    """A token signed with the server's own secret: only its claims or header are hostile."""
    enc = lambda v: base64.urlsafe_b64encode(json.dumps(v).encode()).rstrip(b"=").decode()  # noqa: E731
    signing = f"{enc({'alg': 'HS256', 'typ': 'JWT', **header})}.{enc(claims)}"
    mac = hmac.new(SECRET.encode(), signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


now = int(time.time())
methods = itertools.count()
base_path = "/local/apps_/default/api/v1/default"
forgery = "%0AFORGED%201970-01-01T00:00:00Z%20INFO%20fine%1B%5B2K"
list_path = f"{base_path}/models/deployed/apps"
nul_sub = hs256({"sub": "bot\u0000", "tenant_id": tenant, "scope": "Apps", "exp": now + 600})
crit = hs256({"sub": "bot", "tenant_id": tenant, "scope": "Apps", "exp": now + 600}, crit=["x-must"], **{"x-must": 1})
endless = hs256({"sub": "bot", "tenant_id": tenant, "scope": "Apps", "exp": 2 ** 63})
basic = base64.b64encode(b"some-client:secret&anything").decode()
form = f"grant_type=client_credentials&x{forgery}=1&x{forgery}=2".encode()
too_many = json.dumps({"update_versions": [{"market_name": "local", "app_model_id": f"M{i}", "app_model_version": "1.0.0"} for i in range(1001)]}).encode()
comma_tag = json.dumps({"tags": ["a,b"]}).encode()


def token_request(client_id):
    body = f"grant_type=client_credentials&client_id={client_id}&client_secret=guess".encode()
    return (f"POST /identity_/connect/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def bearer(t):
    return f"Host: x\r\nAuthorization: Bearer {t}\r\nX-UiPath-Internal-TenantId: {tenant}\r\nX-UiPath-FolderKey: {folder}\r\n"


attacks.update({
    "invented methods": lambda: raw(f"PROBE{next(methods)} /healthz HTTP/1.1\r\nHost: x\r\n\r\n".encode()),
    "log injection (path)": lambda: raw(f"GET {base_path}/models/app{forgery}/tenants/{tenant}/publish/versions HTTP/1.1\r\n{headers}\r\n".encode()),
    "log injection (form)": lambda: raw(f"POST /identity_/connect/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(form)}\r\n\r\n".encode() + form),
    "Basic secret&x": lambda: raw(f"POST /identity_/connect/token HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {basic}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 29\r\n\r\ngrant_type=client_credentials".encode()),
    "NUL in sub": lambda: raw(f"GET {list_path} HTTP/1.1\r\n{bearer(nul_sub)}Idempotency-Key: k\r\n\r\n".encode()),
    "crit header": lambda: raw(f"GET {list_path} HTTP/1.1\r\n{bearer(crit)}\r\n".encode()),
    "exp 2^63": lambda: raw(f"GET {list_path} HTTP/1.1\r\n{bearer(endless)}\r\n".encode()),
    "comma in a tag": lambda: raw(f"PATCH {list_path}/some-id HTTP/1.1\r\n{headers}Content-Type: application/json\r\nContent-Length: {len(comma_tag)}\r\n\r\n".encode() + comma_tag),
    "1,001 Rainbond items": lambda: raw(f"POST /openapi/v1/teams/{tenant}/regions/default/apps/1/upgrade HTTP/1.1\r\n{headers}Content-Type: application/json\r\nContent-Length: {len(too_many)}\r\n\r\n".encode() + too_many),
    "forged X-Forwarded-Host": lambda: raw(f"GET {list_path} HTTP/1.1\r\n{headers}X-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\n\r\n".encode()),
    "malformed request line": lambda: raw(b"GET /healthz HTTP/1.1\x01\r\nHost: x\r\n\r\n"),
    "token flood": lambda: raw(token_request(f"flood-{next(methods)}")),
    "keyed, no role": lambda: raw(f"POST {path} HTTP/1.1\r\n{bearer(nobody)}Idempotency-Key: k{next(methods)}\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n".encode() + b'{"deploymentIds":[]}'),
    "keyed, no route": lambda: raw(f"POST {base_path}/models/no/such/route HTTP/1.1\r\n{bearer(nobody)}Idempotency-Key: r{next(methods)}\r\nContent-Length: 2\r\n\r\n{{}}".encode()),
})
health = []


def prober():
    while time.time() < deadline:
        started = time.time()
        try:
            urllib.request.urlopen(base + "/healthz", timeout=5).read()
            health.append(time.time() - started)
        except Exception:
            health.append(float("inf"))
        time.sleep(0.2)


sent = {name: 0 for name in attacks}
# Slow clients hold a connection each. Token requests are not capped: the endpoint's
# own budgets and queue must bound what they cost (Argon2, 19 MiB reused per check).
caps = {"one byte per second": 40}
with cf.ThreadPoolExecutor(max_workers=64) as pool:
    probe = pool.submit(prober)
    futures = []
    while time.time() < deadline:
        for name, attack in attacks.items():
            if sent[name] >= caps.get(name, float("inf")):
                continue
            futures.append(pool.submit(attack))
            sent[name] += 1
        time.sleep(0.05)
    for f in futures:
        f.result()
    probe.result()
peak_rss = memory("VmHWM")
peak_taken = peak_rss - code_rss
problems = []
metrics = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
series = [line for line in metrics.splitlines() if line.startswith("uplift_http_requests_total{")]
if "PROBE" in metrics or len(series) > 100:
    problems.append(f"metrics labels grew with the requests: {len(series)} request series")
listed = urllib.request.Request(base + list_path, headers={
    "Authorization": f"Bearer {token}", "X-UiPath-Internal-TenantId": tenant,
    "X-UiPath-FolderKey": folder, "X-Forwarded-Host": "evil.example"})
if "evil.example" in json.load(urllib.request.urlopen(listed, timeout=10))["@odata.context"]:
    problems.append("a client's X-Forwarded-Host went into @odata.context")
for key_folder, expected in ((folder, 200), (other_folder, 422)):
    keyed = urllib.request.Request(base + path, method="POST", data=b'{"deploymentIds":[]}', headers={
        "Authorization": f"Bearer {token}", "X-UiPath-Internal-TenantId": tenant, "X-UiPath-FolderKey": key_folder,
        "Content-Type": "application/json", "Idempotency-Key": "one-key-two-folders"})
    try:
        answered = urllib.request.urlopen(keyed, timeout=10).status
    except urllib.error.HTTPError as e:
        answered = e.code
    if answered != expected:
        problems.append(f"one key for two folders: {answered} where {expected} was due")
if peak_taken >= 100:
    problems.append(f"peak memory {peak_taken} MiB beside the binary's code (at most 100 MiB is the bound)")
server.stop()
import sqlite3  # noqa: E402
with sqlite3.connect(os.path.join(server.dir, "uplift.db")) as db:
    (records,) = db.execute("SELECT count(*) FROM idempotency_keys WHERE subject = 'nobody'").fetchone()
if records:
    problems.append(f"{records} idempotency records written for a caller refused before the handler's checks")
with open(server.log_path, "rb") as log:
    for line in log:
        if b"\x1b" in line or line.startswith(b"FORGED") or b" ERROR " in line:
            problems.append(f"log line: {line[:200]!r}")
            break
health.sort()
p99 = health[int(len(health) * 0.99) - 1] if health else float("inf")
print(f"hostile requests sent: {sum(sent.values())} ({', '.join(f'{k}: {v}' for k, v in sent.items())})")
print(f"answers: {dict(sorted(statuses.items()))}")
print(f"resident memory: {rest_rss} MiB at rest, {peak_rss} MiB at peak, of which {code_rss} MiB the binary's "
      f"mapped files (peak beside them: {peak_taken} MiB)")
print(f"/healthz meanwhile: {len(health)} probes, p99 {p99 * 1000:.0f} ms, max {health[-1] * 1000:.0f} ms")
bad = [s for s in statuses if s.startswith("5")]
for problem in problems:
    print(f"problem: {problem}")
if bad or p99 > 1.0:
    sys.exit("hostile-load: the server answered 5xx or stopped answering health checks in time")
if problems:
    sys.exit("hostile-load: " + "; ".join(problems))
