#!/usr/bin/env python3
"""Hostile load against one uplift process: oversized bodies, a million ids, slow
clients, huge headers and deep nesting, all at once. Prints the server's resident
memory at rest and at peak, the answers it gave, and how fast /healthz answered
meanwhile. Exits non-zero on any 5xx or an unhealthy server.

Usage: scripts/hostile-load.py [path/to/uplift] [seconds]
"""
import atexit
import concurrent.futures as cf
import json
import os
import socket
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reliability"))
from common import Server  # noqa: E402

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
path = "/local/apps_/default/api/v1/default/models/deployed/apps/updateToLatestAppVersionBulk"
headers = f"Host: x\r\nAuthorization: Bearer {token}\r\nX-UiPath-Internal-TenantId: {tenant}\r\nX-UiPath-FolderKey: {folder}\r\n"
rest_rss = memory("VmRSS")
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
with cf.ThreadPoolExecutor(max_workers=64) as pool:
    probe = pool.submit(prober)
    futures = []
    while time.time() < deadline:
        for name, attack in attacks.items():
            if name == "one byte per second" and sent[name] >= 40:
                continue
            futures.append(pool.submit(attack))
            sent[name] += 1
        time.sleep(0.05)
    for f in futures:
        f.result()
    probe.result()
peak_rss = memory("VmHWM")
server.stop()
health.sort()
p99 = health[int(len(health) * 0.99) - 1] if health else float("inf")
print(f"hostile requests sent: {sum(sent.values())} ({', '.join(f'{k}: {v}' for k, v in sent.items())})")
print(f"answers: {dict(sorted(statuses.items()))}")
print(f"resident memory: {rest_rss} MiB at rest, {peak_rss} MiB at peak")
print(f"/healthz meanwhile: {len(health)} probes, p99 {p99 * 1000:.0f} ms, max {health[-1] * 1000:.0f} ms")
bad = [s for s in statuses if s.startswith("5")]
if bad or p99 > 1.0:
    sys.exit("hostile-load: the server answered 5xx or stopped answering health checks in time")
