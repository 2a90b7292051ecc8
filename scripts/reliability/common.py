"""Shared by the reliability scripts: uplift server processes, HTTP calls, scratch
PostgreSQL databases and the invariants checked straight from the database."""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid

ADMIN_URL = os.environ.get("UPLIFT_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
SECRET = "reliability-secret-" + uuid.uuid4().hex
TENANT = "reliability"
BASE_PATH = "/local/apps_/default/api/v1/default"
# How long a started server may take to answer GET /readyz with 200 (same variable as
# scripts/lib/server.sh).
READY_TIMEOUT = float(os.environ.get("UPLIFT_READY_TIMEOUT", "30"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def psql(url, sql):
    """Rows of a query as lists of strings (psql -At)."""
    out = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-At", "-F", "\t", "-c", sql],
                         check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


class ScratchDatabase:
    """A database of its own on the shared server, dropped at the end."""

    def __init__(self, admin_url=ADMIN_URL):
        self.admin_url = admin_url
        self.name = "uplift_reliability_" + uuid.uuid4().hex[:12]
        psql(admin_url, f'CREATE DATABASE "{self.name}"')
        self.url = admin_url.rsplit("/", 1)[0] + "/" + self.name

    def drop(self):
        psql(self.admin_url, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class PrivateCluster:
    """A PostgreSQL cluster of this script's own (initdb in a scratch directory, on a
    free port of 127.0.0.1), so it can be stopped and restarted without touching the
    shared server. `url` is its database `uplift`."""

    BIN_DIR = "/usr/lib/postgresql/15/bin"

    def __init__(self, settings=None):
        # Server settings passed as `-c name=value` at every start (a benchmark's
        # buffer pool, say).
        self.settings = dict(settings or {})
        self.dir = tempfile.mkdtemp(prefix="uplift-pg-")
        shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        self._as_postgres(f"{self.BIN_DIR}/initdb", "-D", self.dir, "-A", "trust", "-U", "postgres")
        self.start()
        self.admin_url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        psql(self.admin_url, "CREATE DATABASE uplift")
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/uplift"

    @staticmethod
    def _as_postgres(*args):
        subprocess.run(["su", "postgres", "-c", " ".join(args)], check=True, capture_output=True)

    def pg_ctl(self, action, extra=""):
        self._as_postgres(f"{self.BIN_DIR}/pg_ctl", "-D", self.dir, "-w", "-l", f"{self.dir}/log", action, extra)

    def start(self):
        extra = "".join(f" -c {name}={value}" for name, value in self.settings.items())
        self.pg_ctl("start", f"-o '-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1{extra}'")

    def stop(self, mode="fast"):
        self.pg_ctl("stop", f"-m {mode}")

    def destroy(self):
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def log_tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            return b"".join(f.readlines()[-lines:]).decode(errors="replace")
    except OSError as e:
        return f"(no log: {e})\n"


def http_status(url, timeout=2.0):
    """The status GET url answers, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, http.client.HTTPException):
        return None


def wait_ready(url, process, log_path, what, timeout=None):
    """Returns once GET url answers 200 while `process` runs. Raises RuntimeError with
    the last 40 lines of log_path if the process exits first or `timeout` seconds pass
    (the process is then killed): a script must not go on against a dead server."""
    timeout = READY_TIMEOUT if timeout is None else timeout
    deadline = time.monotonic() + timeout
    status = None
    while True:
        if process.poll() is not None:
            why = f"exited with status {process.returncode} before GET {url} answered 200"
            break
        status = http_status(url, timeout=max(0.1, min(2.0, deadline - time.monotonic())))
        # Still running: an answer while our process has died (it lost the port to
        # another) must not count.
        if status == 200 and process.poll() is None:
            return
        if time.monotonic() >= deadline:
            why = f"did not answer GET {url} with 200 within {timeout:g} s (last answer: {status})"
            process.kill()
            process.wait()
            break
        time.sleep(0.05)
    raise RuntimeError(f"{what} {why}\n--- last 40 lines of {log_path} ---\n{log_tail(log_path)}---")


class Server:
    """`uplift serve` as a child process. database_url None: uplift's default (SQLite
    under the server's own data directory)."""

    def __init__(self, binary, database_url=None, **settings):
        self.binary, self.port = binary, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.dir = tempfile.mkdtemp()
        self.log_path = os.path.join(self.dir, "server.log")
        self.env = dict(os.environ, UPLIFT_LISTEN=f"127.0.0.1:{self.port}", UPLIFT_JWT_SECRET=SECRET,
                        UPLIFT_DATA_DIR=self.dir, UPLIFT_LOG="warn")
        if database_url is not None:
            self.env["UPLIFT_DATABASE_URL"] = database_url
        self.env.update({f"UPLIFT_{k.upper()}": str(v) for k, v in settings.items()})
        self.process = None
        self.log = None

    def start(self, timeout=None):
        """Starts the process (again, after kill9/stop) and waits for /readyz == 200;
        raises with the log's tail if it does not get there (see wait_ready)."""
        # Whatever already accepts connections there would answer /readyz in our place.
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                raise RuntimeError(f"uplift: 127.0.0.1:{self.port} is already in use; not starting {self.binary} serve")
        if self.log:
            self.log.close()
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen([self.binary, "serve"], env=self.env, stdout=self.log, stderr=self.log)
        wait_ready(self.base + "/readyz", self.process, self.log_path,
                   f"uplift ({self.binary} serve) on port {self.port}", timeout)
        return self

    def ready(self):
        return http_status(self.base + "/readyz")

    def kill9(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=40)

    def cli(self, *args):
        return subprocess.run([self.binary, *args], env=self.env, check=True, capture_output=True,
                              text=True).stdout.strip()


def call(base, method, path, token, folder=None, body=None, key=None, timeout=300):
    """(status, parsed body or None). Connection failures are status 0."""
    headers = {"Authorization": f"Bearer {token}", "X-UiPath-Internal-TenantId": TENANT}
    if folder:
        headers["X-UiPath-FolderKey"] = folder
    if key:
        headers["Idempotency-Key"] = key
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    url = base + (path if path.startswith("/openapi/") else BASE_PATH + path)
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return response.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, None
    except OSError:
        return 0, None


def setup_tenant(server, subject="reliability-admin"):
    """A folder, a tenant-wide Administrator grant and a token; returns (folder key, id, token)."""
    folder = server.cli("folder", "create", "--tenant", TENANT, "--name", "Reliability")
    folder_id = json.loads(server.cli("folder", "list", "--tenant", TENANT).splitlines()[0])["id"]
    server.cli("role", "assign", "--tenant", TENANT, "--subject", subject, "--role", "Administrator")
    token = server.cli("token", "--tenant", TENANT, "--subject", subject, "--scope", "Apps OR.Folders.Read", "--ttl", "86400")
    return folder, folder_id, token


def seed_deployments(db_url, folder_id, app_id, version, count):
    """Deployments and their deploy events in bulk, as the service writes them."""
    psql(db_url, f"""
        WITH d AS (
          INSERT INTO deployments (id, tenant_id, folder_id, app_id, version, title, description, routing_name,
                                   maintenance_enabled, maintenance_url, maintenance_excluded_users, created_at, updated_at)
          SELECT gen_random_uuid()::text, '{TENANT}', {folder_id}, {app_id}, {version}, 'Seeded ' || g, '',
                 'seeded-' || replace(gen_random_uuid()::text, '-', ''), false, NULL, '[]', now(), now()
          FROM generate_series(1, {count}) g
          RETURNING id)
        INSERT INTO deployment_events (tenant_id, deployment_id, kind, from_version, to_version, actor, request_id, created_at)
        SELECT '{TENANT}', id, 'deploy', NULL, {version}, 'seed', NULL, now() FROM d""")
    return [row[0] for row in psql(db_url, f"SELECT id FROM deployments WHERE app_id = {app_id} ORDER BY id")]


def invariant_violations(db_url):
    """Every way the data could be wrong, as readable lines (empty when all hold)."""
    problems = []
    # A version change moved a deployment only onto a version published at that time.
    for row in psql(db_url, """
        SELECT e.id, e.deployment_id, e.kind, e.to_version FROM deployment_events e
        JOIN deployments d ON d.id = e.deployment_id
        LEFT JOIN app_versions v ON v.app_id = d.app_id AND v.version = e.to_version
        WHERE e.from_version IS DISTINCT FROM e.to_version
          AND (v.id IS NULL OR v.published_at > e.created_at
               OR (v.unpublished_at IS NOT NULL AND v.unpublished_at < e.created_at))"""):
        problems.append(f"event {row[0]} ({row[2]}) moved {row[1]} to version {row[3]}, not published then")
    # Each history is a chain from a deploy event: no change without its event, and no
    # event without its change.
    for row in psql(db_url, """
        WITH c AS (SELECT e.*, LAG(e.to_version) OVER w AS prev_to, ROW_NUMBER() OVER w AS rn
                   FROM deployment_events e WINDOW w AS (PARTITION BY deployment_id ORDER BY id))
        SELECT id, deployment_id, kind, from_version, prev_to FROM c
        WHERE (rn = 1 AND (kind <> 'deploy' OR from_version IS NOT NULL))
           OR (rn > 1 AND from_version IS DISTINCT FROM prev_to)"""):
        problems.append(f"event {row[0]} ({row[2]}) of {row[1]} starts at {row[3] or 'nothing'}, previous ended at {row[4] or 'nothing'}")
    for row in psql(db_url, """
        SELECT d.id, d.version, l.to_version FROM deployments d
        LEFT JOIN LATERAL (SELECT to_version FROM deployment_events WHERE deployment_id = d.id
                           ORDER BY id DESC LIMIT 1) l ON true
        WHERE l.to_version IS DISTINCT FROM d.version"""):
        problems.append(f"deployment {row[0]} is on version {row[1]} but its history ends at {row[2] or 'nothing'}")
    return problems
