#!/usr/bin/env python3
"""docker-compose's topology without Docker: two `uplift serve` replicas on one
PostgreSQL database behind nginx running `deploy/nginx.conf` (its upstream addresses
pointed at the local replicas), checked end to end.

    scripts/proxy-check.py BINARY

Checks: both replicas answer through the one port; the client's X-Request-Id goes
through nginx and comes back; a body over uplift's limit gets uplift's 413
problem+json, not nginx's page; the operator console's page and files come through
with their headers; after SIGTERM to one replica, every call is served by
the other; the history in the database is consistent. Installs Debian's nginx when
missing."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reliability"))
from common import (BASE_PATH, TENANT, ScratchDatabase, Server, call, free_port,  # noqa: E402
                    invariant_violations, setup_tenant, wait_ready)
from nginx import local_config, nginx_binary  # noqa: E402

def get(url, headers=None, data=None, method="GET"):
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def bulk_requests_served(replica):
    _, _, body = get(replica.base + "/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith("uplift_http_requests_total{") and "updateToLatestAppVersionBulk" in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def main():
    binary = os.path.abspath(sys.argv[1])
    nginx = nginx_binary()
    db = ScratchDatabase()
    workdir = tempfile.mkdtemp(prefix="uplift-proxy-")
    # nginx's workers (an unprivileged user) write request bodies under it.
    os.chmod(workdir, 0o755)
    replicas = [Server(binary, db.url), Server(binary, db.url)]
    proxy = None
    failures = []

    def check(ok, what):
        print(("ok   " if ok else "FAIL ") + what, flush=True)
        if not ok:
            failures.append(what)

    try:
        for replica in replicas:
            replica.start()
        port = free_port()
        conf = local_config(replicas, port, workdir)
        subprocess.run([nginx, "-t", "-q", "-e", "stderr", "-p", workdir, "-c", conf], check=True)
        error_log = os.path.join(workdir, "error.log")
        proxy = subprocess.Popen([nginx, "-e", "stderr", "-p", workdir, "-c", conf, "-g", "daemon off;"],
                                 stderr=open(error_log, "ab"))
        base = f"http://127.0.0.1:{port}"
        # Same bounded wait as the replicas': stop with nginx's log rather than go on without it.
        wait_ready(base + "/readyz", proxy, error_log, f"nginx on port {port}")
        check(get(base + "/readyz")[0] == 200, "GET /readyz through nginx answers 200")

        folder, _, token = setup_tenant(replicas[0])
        status, published = call(base, "POST", "/models/apps/codedapp/publish", token,
                                 body={"packageName": "Proxy Check", "packageVersion": "1.0.0", "tenantName": TENANT})
        check(status == 200, f"publish through nginx answers 200 (got {status})")
        system_name = published["systemName"]
        ids = []
        for _ in range(20):
            status, deployed = call(base, "POST", f"/models/{system_name}/publish/versions/1/deploy", token, folder, {})
            ids.append(deployed["id"])
        call(base, "POST", "/models/apps/codedapp/publish", token,
             body={"packageName": "Proxy Check", "packageVersion": "1.1.0", "tenantName": TENANT})

        bulk_url = base + BASE_PATH + "/models/deployed/apps/updateToLatestAppVersionBulk"
        headers = {"Authorization": f"Bearer {token}", "X-UiPath-Internal-TenantId": TENANT,
                   "X-UiPath-FolderKey": folder, "Content-Type": "application/json"}
        echoed = 0
        upgraded = 0
        for i, deployment_id in enumerate(ids[:10]):
            status, response_headers, body = get(
                bulk_url, dict(headers, **{"X-Request-Id": f"proxy-check-{i}"}),
                json.dumps({"deploymentIds": [deployment_id]}).encode(), "POST")
            echoed += response_headers.get("X-Request-Id") == f"proxy-check-{i}"
            upgraded += status == 200 and json.loads(body)["updatedDeployments"][0]["version"] == 2
        check(upgraded == 10, f"10 bulk calls through nginx upgrade their deployment ({upgraded} did)")
        check(echoed == 10, f"the client's X-Request-Id comes back through nginx ({echoed} of 10)")
        served = [bulk_requests_served(r) for r in replicas]
        check(all(n > 0 for n in served), f"both replicas served bulk calls ({served[0]:.0f} and {served[1]:.0f})")

        status, response_headers, _ = get(bulk_url, headers, b"[" + b" " * (2 * 1024 * 1024) + b"]", "POST")
        content_type = response_headers.get("Content-Type", "")
        check(status == 413 and content_type.startswith("application/problem+json"),
              f"a 2 MiB body gets uplift's 413 problem+json, not nginx's page ({status}, {content_type})")

        # The operator console through nginx: its page, a module, its security headers,
        # and the folder list it starts with.
        status, response_headers, page = get(base + "/console/")
        check(status == 200 and response_headers.get("Content-Type", "").startswith("text/html")
              and "frame-ancestors 'none'" in response_headers.get("Content-Security-Policy", "")
              and b'src="main.js"' in page,
              f"GET /console/ through nginx serves the page with its CSP ({status})")
        status, response_headers, _ = get(base + "/console/main.js")
        check(status == 200 and response_headers.get("Content-Type", "").startswith("text/javascript")
              and response_headers.get("X-Content-Type-Options") == "nosniff",
              f"GET /console/main.js through nginx is JavaScript, nosniff ({status})")
        status, _, body = get(base + BASE_PATH + "/folders", {k: v for k, v in headers.items() if k != "Content-Type"})
        check(status == 200 and any(f["key"] == folder for f in json.loads(body)["value"]),
              f"the console's folder list through nginx names the folder ({status})")

        replicas[0].stop()
        check(replicas[0].process.returncode == 0, f"SIGTERM: replica 1 exits 0 ({replicas[0].process.returncode})")
        statuses = []
        for deployment_id in ids[10:]:
            status, _ = call(base, "POST", "/models/deployed/apps/updateToLatestAppVersionBulk", token, folder,
                             {"deploymentIds": [deployment_id]})
            statuses.append(status)
        check(statuses == [200] * 10, f"with replica 1 stopped every call is served by replica 2 ({statuses})")

        problems = invariant_violations(db.url)
        check(not problems, "history and deployments agree" + ("" if not problems else f": {problems[:3]}"))
    finally:
        if proxy:
            proxy.terminate()
            proxy.wait(timeout=10)
        for replica in replicas:
            replica.stop()
        db.drop()

    if failures:
        print(f"proxy check: {len(failures)} failed (nginx logs in {workdir})")
        sys.exit(1)
    shutil.rmtree(workdir, ignore_errors=True)
    print("proxy check: all passed")


if __name__ == "__main__":
    main()
