#!/usr/bin/env python3
"""Chaos soak over the whole platform (issue 19): N replicas on one PostgreSQL database
(a private cluster, so it can be restarted) behind nginx running deploy/nginx.conf, a
webhook receiver that is sometimes down, answers 500 or 429, or is slow; many clients
mixing every kind of call; and faults injected at random: kill -9 of a replica
(restarted after a while), SIGSTOP past its lease then SIGCONT, a PostgreSQL restart,
a session holding row locks. After the run, faults stop and work settles; then the
invariants are checked from the database (scripts/reliability/chaos_checks.py).

Usage: scripts/chaos.py DURATION [--replicas N] [--seed S] [--clients C] [BINARY]
DURATION: seconds, or with a unit (90s, 30m). The seed is printed: the same seed
replays the same choices (timing still differs). Exits 1 on any violation."""
import argparse
import collections
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "reliability"))
try:
    import flaky_receiver  # noqa: E402 - needs standardwebhooks
except ImportError:
    # Run again inside the virtualenv holding the pinned reference library.
    venv = subprocess.run([os.path.join(HERE, "webhooks", "venv.sh")], check=True, capture_output=True,
                          text=True).stdout.strip()
    python = os.path.join(venv, "bin", "python")
    os.execv(python, [python, os.path.abspath(__file__), *sys.argv[1:]])
import chaos_checks  # noqa: E402
from common import TENANT, PrivateCluster, Server, call, free_port, http_status, psql, wait_ready  # noqa: E402
from nginx import local_config, nginx_binary  # noqa: E402

LEASE = 3  # operation and idempotency leases (s): a SIGSTOP of 2-3 leases outlives them
SETTINGS = dict(operation_lease_seconds=LEASE, idempotency_lease_seconds=LEASE, operation_poll_ms=200,
                operation_batch_items=20, lock_timeout_ms=1000, webhook_allow_http="true",
                webhook_allow_networks="127.0.0.1/32", webhook_poll_ms=100, webhook_timeout_ms=1500,
                webhook_retry_schedule_seconds=",".join(["1", "1", "2", "2", "3", "3"] + ["5"] * 30),
                max_bulk_items=500, log="warn")
APPS, PER_FOLDER = 3, 30  # deployments: APPS x 2 folders x PER_FOLDER
MEMORY_BOUND_MIB = 400
GRACE = 10  # seconds after a fault ends during which its effects (a 502, a 5xx) are counted with it


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("duration")
    parser.add_argument("binary", nargs="?", default=os.path.join(HERE, "..", "target", "debug", "uplift"))
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--clients", type=int, default=12)
    args = parser.parse_intermixed_args()
    text = args.duration
    unit = {"s": 1, "m": 60, "h": 3600}.get(text[-1], None)
    args.seconds = float(text[:-1]) * unit if unit else float(text)
    args.seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    args.binary = os.path.abspath(args.binary)
    return args


class Stats:
    """Requests by kind and status, and windows in which faults were active."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = collections.Counter()  # (kind, status)
        self.counts = collections.Counter()
        self.samples = {}  # (kind, 4xx status) -> the first answer's detail, to tell expected refusals from bugs
        self.windows = {"postgres": [], "replica": []}  # (start, end or None), monotonic
        self.server_errors = []  # (kind, status, start, end, body) answered by uplift
        self.proxy_errors = []  # (kind, status, start, end): nginx's own 502/504 pages
        self.fault_errors = []  # a fault that could not be applied or undone (a replica not restarting)

    def add(self, key, n=1):
        with self.lock:
            self.counts[key] += n

    def open_window(self, kind):
        with self.lock:
            self.windows[kind].append([time.monotonic(), None])
            return self.windows[kind][-1]

    def close_window(self, window):
        with self.lock:
            window[1] = time.monotonic()

    def during(self, kind, start, end):
        with self.lock:
            return any(s <= end and (e is None or start <= e + GRACE) for s, e in self.windows[kind])


class Platform:
    """The private cluster, the replicas, nginx and the receiver."""

    def __init__(self, args, stats):
        self.args, self.stats = args, stats
        self.cluster = PrivateCluster()
        self.replicas = [Server(args.binary, f"{self.cluster.url}?application_name=replica-{i}", **SETTINGS)
                         for i in range(args.replicas)]
        self.workdir = tempfile.mkdtemp(prefix="uplift-chaos-")
        os.chmod(self.workdir, 0o755)
        self.proxy = None
        self.receiver = flaky_receiver.FlakyReceiver(args.seed)
        self.peak_rss = [0] * args.replicas  # KiB, over every incarnation
        self.replica_lock = threading.Lock()

    def start(self):
        for r in self.replicas:
            r.start()
        nginx = nginx_binary()
        port = free_port()
        conf = local_config(self.replicas, port, self.workdir)
        error_log = os.path.join(self.workdir, "error.log")
        self.proxy = subprocess.Popen([nginx, "-e", "stderr", "-p", self.workdir, "-c", conf, "-g", "daemon off;"],
                                      stderr=open(error_log, "ab"))
        self.base = f"http://127.0.0.1:{port}"
        wait_ready(self.base + "/readyz", self.proxy, error_log, f"nginx on port {port}")

    def sample_memory(self):
        for i, r in enumerate(self.replicas):
            try:
                with open(f"/proc/{r.process.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            self.peak_rss[i] = max(self.peak_rss[i], int(line.split()[1]))
            except OSError:
                pass

    def stop(self):
        if self.proxy:
            self.proxy.terminate()
            self.proxy.wait(timeout=10)
        for r in self.replicas:
            if r.process and r.process.poll() is None:
                r.process.send_signal(signal.SIGCONT)
                try:
                    r.stop()
                except subprocess.TimeoutExpired:
                    r.process.kill()
        self.receiver.close()
        self.cluster.destroy()


def cli(platform, *args):
    """`uplift` CLI against the database (retried while PostgreSQL restarts)."""
    for attempt in range(20):
        try:
            return platform.replicas[0].cli(*args)
        except subprocess.CalledProcessError:
            time.sleep(0.5)
    raise RuntimeError(f"uplift {' '.join(args)} kept failing")


class World:
    """What the clients share: tokens, folders, apps and their versions, the
    deployments, the operations and rollouts created."""

    def __init__(self, platform, stats):
        self.platform, self.stats = platform, stats
        self.lock = threading.Lock()
        self.folders = []  # (key, id)
        self.apps = {}  # system name -> {"package": name, "versions": [published, never withdrawn by us], "minor": n}
        self.deployments = {}  # folder key -> [ids]
        self.operations = []
        self.rollouts = []
        self.tokens = {}

    def setup(self):
        p = self.platform
        for name in ("Chaos A", "Chaos B"):
            key = cli(p, "folder", "create", "--tenant", TENANT, "--name", name)
            self.folders.append(key)
        cli(p, "role", "assign", "--tenant", TENANT, "--subject", "chaos-admin", "--role", "Administrator")
        for subject in ("chaos-editor", "chaos-approver"):
            for key in self.folders:
                cli(p, "role", "assign", "--tenant", TENANT, "--subject", subject, "--role", "FolderAdministrator",
                    "--folder", key)
        for subject in ("chaos-admin", "chaos-editor", "chaos-approver"):
            self.tokens[subject] = cli(p, "token", "--tenant", TENANT, "--subject", subject, "--scope",
                                       "Apps OR.Folders.Read", "--ttl", "86400")
        admin = self.tokens["chaos-admin"]
        # The endpoint first, so every event of the run is one it must receive.
        status, endpoint = call(p.base, "POST", "/webhooks", admin, body={"url": p.receiver.url, "eventTypes": []})
        assert status == 201, (status, endpoint)
        p.receiver.set_secret(endpoint["secret"])
        self.endpoint_id = endpoint["id"]
        for n in range(APPS):
            package = f"Chaos {n} {uuid.uuid4().hex[:6]}"
            status, body = call(p.base, "POST", "/models/apps/codedapp/publish", admin,
                                body={"packageName": package, "packageVersion": "1.0.0"})
            assert status == 200, (status, body)
            self.apps[body["systemName"]] = {"package": package, "versions": [body["deployVersion"]], "minor": 0}
        for key in self.folders:
            self.deployments[key] = []
            for system_name in self.apps:
                for _ in range(PER_FOLDER):
                    status, body = call(p.base, "POST", f"/models/{system_name}/publish/versions/1/deploy", admin,
                                        folder=key, body={})
                    assert status == 200, (status, body)
                    self.deployments[key].append(body["id"])


def record(stats, kind, status, body, started):
    ended = time.monotonic()
    with stats.lock:
        stats.requests[(kind, status)] += 1
        if 400 <= status < 500 and (kind, status) not in stats.samples:
            stats.samples[(kind, status)] = str((body or {}).get("detail") or body)[:160]
    if status >= 500 or status == 0:
        # nginx's own pages (a replica gone mid-request) are HTML; uplift's are problem+json.
        if body is None:
            with stats.lock:
                stats.proxy_errors.append((kind, status, started, ended))
        else:
            with stats.lock:
                stats.server_errors.append((kind, status, started, ended, str(body)[:300]))


def client(n, world, deadline, max_requests):
    rng = random.Random(world.seed * 1000 + n)
    p, stats = world.platform, world.stats
    admin, editor, approver = (world.tokens[s] for s in ("chaos-admin", "chaos-editor", "chaos-approver"))
    done = 0

    def do(kind, method, path, token=admin, folder=None, body=None, key=None):
        started = time.monotonic()
        status, answer = call(p.base, method, path, token, folder=folder, body=body, key=key, timeout=120)
        record(stats, kind, status, answer, started)
        return status, answer

    while time.monotonic() < deadline and done < max_requests:
        done += 1
        folder = rng.choice(world.folders)
        system_name = rng.choice(list(world.apps))
        token = admin if rng.random() < 0.7 else editor
        roll = rng.random()
        if roll < 0.22:
            ids = rng.sample(world.deployments[folder], rng.randint(3, 25))
            query = rng.choice(["", "", "?dryRun=true", f"?maxFailures={rng.randint(0, 3)}"])
            key = f"chaos-{n}-{done}" if rng.random() < 0.4 and "dryRun" not in query else None
            path = "/models/deployed/apps/updateToLatestAppVersionBulk" + query
            status, first = do("bulk" + (" keyed" if key else "") + (" dry run" if "dry" in query else ""), "POST",
                               path, token, folder, {"deploymentIds": ids}, key)
            # A keyed call is retried like a client would (no answer, a 5xx, 409 while
            # the first attempt's lease runs), then replayed: the answers must match.
            tries = 0
            while key and (status >= 500 or status in (0, 409)) and tries < 20 and time.monotonic() < deadline + 60:
                tries += 1
                time.sleep(0.5)
                status, first = do("bulk keyed retry", "POST", path, token, folder, {"deploymentIds": ids}, key)
            if key and status == 200:
                again, replay = do("bulk keyed replay", "POST", path, token, folder, {"deploymentIds": ids}, key)
                if again == 200:
                    stats.add("replays compared")
                    if replay != first:
                        stats.add("replay mismatches")
        elif roll < 0.32:
            body = {"selector": {"appSystemNames": [system_name], "onlyOutdated": rng.random() < 0.7},
                    "maxConcurrency": rng.randint(1, 6)}
            if rng.random() < 0.2:
                body["dryRun"] = True
            if rng.random() < 0.3:
                body["maxFailures"] = rng.choice([1, 2, "10%"])
            status, created = do("operation create", "POST", "/operations/upgrades", token, folder, body)
            if status == 202:
                with world.lock:
                    world.operations.append((created["id"], folder))
                if rng.random() < 0.25:
                    time.sleep(rng.uniform(0, 1.5))
                    do("operation cancel", "POST", f"/operations/{created['id']}/cancel", token, folder)
        elif roll < 0.40:
            manual = rng.random() < 0.5
            waves = [{"name": "canary", "size": "30%", "bakeSeconds": rng.randint(1, 3), "maxConcurrency": 4,
                      "maxFailures": rng.randint(0, 2)},
                     {"name": "rest", "maxConcurrency": 6, **({"gate": "manual"} if manual else {})}]
            body = {"name": f"chaos {n}-{done}", "selector": {"appSystemNames": [system_name]}, "waves": waves,
                    "onFailure": rng.choice(["pause", "rollback"])}
            if manual:
                body["approval"] = {"fourEyes": True}
            status, created = do("rollout create", "POST", "/rollouts", token, body=body)
            if status == 201:
                with world.lock:
                    world.rollouts.append(created["id"])
        elif roll < 0.52:
            with world.lock:
                rid = rng.choice(world.rollouts) if world.rollouts else None
            if rid:
                action = rng.choice(["approve", "approve", "pause", "resume", "resume", "abort", "retry", "rollback"])
                who = approver if action == "approve" else token
                do(f"rollout {action}", "POST", f"/rollouts/{rid}/{action}", who, body={})
        elif roll < 0.57:
            with world.lock:
                app = world.apps[system_name]
                app["minor"] += 1
                label = f"1.{app['minor']}.0"
            status, body = do("publish", "POST", "/models/apps/codedapp/publish", admin,
                              body={"packageName": app["package"], "packageVersion": label})
            if status == 200:
                with world.lock:
                    app["versions"].append(body["deployVersion"])
        elif roll < 0.60:
            with world.lock:
                versions = sorted(world.apps[system_name]["versions"])[:-1]  # the newest always stays
                version = rng.choice(versions) if versions else None
                if version is not None:
                    world.apps[system_name]["versions"].remove(version)
            if version is not None:
                do("unpublish", "DELETE", f"/models/{system_name}/publish/versions/{version}", admin)
        elif roll < 0.67:
            with world.lock:
                version = rng.choice(world.apps[system_name]["versions"])
            body = rng.choice([{"title": f"edited by {n} at {done}"}, {"tags": [f"t{rng.randint(0, 3)}"]},
                               {"version": version}])
            do("edit", "PATCH", f"/models/deployed/apps/{rng.choice(world.deployments[folder])}", token, folder, body)
        elif roll < 0.71:
            do("deployment rollback", "POST", f"/models/deployed/apps/{rng.choice(world.deployments[folder])}/rollback",
               token, folder)
        elif roll < 0.75:
            with world.lock:
                op = rng.choice(world.operations) if world.operations else None
            if op:
                do("operation cancel", "POST", f"/operations/{op[0]}/cancel", token, op[1])
        else:
            with world.lock:
                op = rng.choice(world.operations) if world.operations else None
                rid = rng.choice(world.rollouts) if world.rollouts else None
            reads = [("list", "/models/deployed/apps?top=50&orderBy=version%20desc", folder),
                     ("history", f"/models/deployed/apps/{rng.choice(world.deployments[folder])}/history?top=5", folder),
                     ("version counts", "/models/deployed/apps/versionCounts", folder),
                     ("operations list", "/operations?top=20", folder),
                     ("rollouts list", "/rollouts?top=20", None),
                     ("deliveries", f"/webhooks/{world.endpoint_id}/deliveries?top=20", None),
                     ("folders", "/folders", None)]
            if op:
                reads += [("operation monitor", f"/operations/{op[0]}", op[1]),
                          ("operation items", f"/operations/{op[0]}/items?top=50", op[1])]
            if rid:
                reads.append(("rollout read", f"/rollouts/{rid}", None))
            kind, path, read_folder = rng.choice(reads)
            if rng.random() < 0.1:
                started = time.monotonic()
                status = http_status(p.base + rng.choice(["/console/", "/console/main.js"]), 10)
                record(stats, "console page", status or 0, {} if status else None, started)
            else:
                do(kind, "GET", path, token, read_folder)
        time.sleep(rng.uniform(0, 0.05))


def grants(world, deadline):
    """The editor's grant on the second folder revoked and restored, again and again."""
    rng = random.Random(world.seed + 7)
    key = world.folders[1]
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(3, 10))
        for action in ("revoke", "assign"):
            cli(world.platform, "role", action, "--tenant", TENANT, "--subject", "chaos-editor", "--role",
                "FolderAdministrator", "--folder", key)
            world.stats.add(f"grant {action}d" if action == "revoke" else "grant restored")
            if action == "revoke":
                time.sleep(rng.uniform(1, 5))


def receiver_chaos(world, deadline):
    rng = random.Random(world.seed + 11)
    while time.monotonic() < deadline:
        mode = rng.choices(flaky_receiver.MODES, weights=[50, 12, 12, 14, 12])[0]
        world.platform.receiver.set_mode(mode)
        time.sleep(rng.uniform(1, 6))
    world.platform.receiver.set_mode("ok")


def fault_plan(rng, seconds):
    """(at seconds, fault) pairs: a bounded run gets each fault at fixed fractions (so
    one of each always happens), a longer one random faults every 10-30 s."""
    if seconds < 300:
        order = ["kill", "locks", "stop", "postgres", "kill", "stop"]
        return [(seconds * (0.08 + 0.11 * i), f) for i, f in enumerate(order)]
    plan, at = [], 5.0
    while at < seconds * 0.9:
        plan.append((at, rng.choices(["kill", "stop", "postgres", "locks"], weights=[3, 2, 2, 2])[0]))
        at += rng.uniform(10, 30)
    return plan


def inject(world, plan, started):
    rng = random.Random(world.seed + 13)
    p, stats = world.platform, world.stats
    for at, fault in plan:
        time.sleep(max(0, started + at - time.monotonic()))
        try:
            apply_fault(world, rng, fault)
        except Exception as e:  # noqa: BLE001 - reported as a violation, the run goes on
            stats.fault_errors.append(f"{fault}: {e}")
            for r in p.replicas:  # whatever the fault left stopped or dead comes back
                if r.process.poll() is None:
                    r.process.send_signal(signal.SIGCONT)
                else:
                    try:
                        r.start()
                    except RuntimeError as again:
                        stats.fault_errors.append(f"restarting {r.base}: {again}")
        stats.add(f"fault: {fault}")
        print(f"  {time.monotonic() - started:6.1f} s  fault: {fault}", flush=True)


def apply_fault(world, rng, fault):
    p, stats = world.platform, world.stats
    if fault == "kill":
        i = rng.randrange(len(p.replicas))
        window = stats.open_window("replica")
        p.replicas[i].kill9()
        time.sleep(rng.uniform(2, 6))
        p.replicas[i].start()
        stats.close_window(window)
    elif fault == "stop":
        i = rng.randrange(len(p.replicas))
        window = stats.open_window("replica")
        p.replicas[i].process.send_signal(signal.SIGSTOP)
        time.sleep(LEASE * 2 + rng.uniform(0, 3))
        p.replicas[i].process.send_signal(signal.SIGCONT)
        stats.close_window(window)
    elif fault == "postgres":
        window = stats.open_window("postgres")
        p.cluster.stop(rng.choice(["fast", "immediate"]))
        time.sleep(rng.uniform(2, 6))
        p.cluster.start()
        stats.close_window(window)
    elif fault == "locks":
        system_name = rng.choice(list(world.apps))
        hold = rng.uniform(2, 6)
        subprocess.run(["psql", p.cluster.url, "-q", "-c",
                        f"BEGIN; SELECT count(*) FROM (SELECT d.id FROM deployments d JOIN apps a ON a.id = d.app_id "
                        f"WHERE a.system_name = '{system_name}' FOR UPDATE OF d) t; SELECT pg_sleep({hold:.1f}); COMMIT;"],
                       capture_output=True, timeout=60)


def settle(world, timeout, stalled_after=120):
    """Once faults have stopped: resume what is paused, approve what waits, until every
    operation and rollout is terminal and every delivery done. Gives up after `timeout`
    unless the work left is still shrinking: a backlog that drains is waited for (up
    to three times `timeout`), one that made no progress for `stalled_after` seconds is
    not (a stall is reported as the violations it leaves)."""
    p = world.platform
    admin, approver = world.tokens["chaos-admin"], world.tokens["chaos-approver"]
    started = time.monotonic()
    deadline, cap = started + timeout, started + 3 * timeout
    least, progressed = None, started
    nudged = collections.Counter()
    while True:
        now = time.monotonic()
        if now >= cap or (now >= deadline and now - progressed >= stalled_after):
            break
        ops = int(psql(p.cluster.url, f"SELECT count(*) FROM operations WHERE status NOT IN "
                                      f"{chaos_checks.TERMINAL_OPERATIONS}")[0][0])
        rollouts = psql(p.cluster.url, f"SELECT id, status FROM rollouts WHERE status NOT IN "
                                       f"{chaos_checks.TERMINAL_ROLLOUTS}")
        pending = int(psql(p.cluster.url, "SELECT count(*) FROM webhook_deliveries WHERE status IN "
                                          "('pending', 'sending')")[0][0])
        undispatched = int(psql(p.cluster.url, "SELECT count(*) FROM webhook_events WHERE NOT dispatched")[0][0])
        for rid, status in rollouts:
            if status == "AwaitingApproval":
                nudged[call(p.base, "POST", f"/rollouts/{rid}/approve", approver, body={})[0]] += 1
            elif status == "Paused":
                if call(p.base, "POST", f"/rollouts/{rid}/resume", admin, body={})[0] == 409:
                    nudged[call(p.base, "POST", f"/rollouts/{rid}/retry", admin, body={})[0]] += 1
        if not ops and not rollouts and not pending and not undispatched:
            return nudged
        left = ops + len(rollouts) + pending + undispatched
        if least is None or left < least:
            least, progressed = left, time.monotonic()
        time.sleep(1)
    return nudged


def main():
    args = parse_args()
    print(f"chaos: {args.seconds:.0f} s, {args.replicas} replicas, {args.clients} clients, seed {args.seed} "
          f"(replay: scripts/chaos.py {args.duration} --replicas {args.replicas} --seed {args.seed})", flush=True)
    stats = Stats()
    platform = Platform(args, stats)
    world = World(platform, stats)
    world.seed = args.seed
    failed = True
    try:
        platform.start()
        world.setup()
        print(f"  setup: {sum(len(v) for v in world.deployments.values())} deployments of {APPS} apps in 2 folders, "
              f"endpoint {world.endpoint_id} -> {platform.receiver.url}", flush=True)
        rng = random.Random(args.seed)
        started = time.monotonic()
        deadline = started + args.seconds
        stop_sampling = threading.Event()

        def sampler():
            while not stop_sampling.wait(1):
                platform.sample_memory()

        threads = [threading.Thread(target=client, args=(n, world, deadline, 100000)) for n in range(args.clients)]
        threads += [threading.Thread(target=grants, args=(world, deadline)),
                    threading.Thread(target=receiver_chaos, args=(world, deadline)),
                    threading.Thread(target=inject, args=(world, fault_plan(rng, args.seconds), started))]
        sampling = threading.Thread(target=sampler, daemon=True)
        sampling.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        run_seconds = time.monotonic() - started
        platform.receiver.set_mode("ok")
        cli(platform, "role", "assign", "--tenant", TENANT, "--subject", "chaos-editor", "--role",
            "FolderAdministrator", "--folder", world.folders[1])
        settle_started = time.monotonic()
        nudged = settle(world, max(180, args.seconds * 0.2))
        settle_seconds = time.monotonic() - settle_started
        time.sleep(2)  # the last deliveries' answers recorded by the receiver
        stop_sampling.set()
        platform.sample_memory()
        failed = report(args, world, stats, run_seconds, settle_seconds, nudged)
    finally:
        platform.stop()
    if failed:
        print(f"  logs: nginx in {platform.workdir}, replicas in " + ", ".join(r.dir for r in platform.replicas))
    else:
        shutil.rmtree(platform.workdir, ignore_errors=True)
    sys.exit(1 if failed else 0)


def report(args, world, stats, run_seconds, settle_seconds, nudged):
    p, url = world.platform, world.platform.cluster.url
    monitors = {}
    for op, folder in world.operations:
        status, body = call(p.replicas[0].base, "GET", f"/operations/{op}", world.tokens["chaos-admin"], folder=folder)
        if status == 200:
            monitors[op] = body["counters"]
    accepted, types, unverified, answers = p.receiver.snapshot()
    violations = collections.OrderedDict()
    violations["history"] = chaos_checks.history(url)
    violations["stuck"] = chaos_checks.unfinished(url)
    violations["operation items"] = chaos_checks.operation_items(url)
    violations["counters"] = chaos_checks.counters(url, monitors)
    violations["outbox"] = chaos_checks.outbox(url)
    violations["deliveries"] = chaos_checks.deliveries(url, world.endpoint_id, accepted, types)
    violations["signatures"] = unverified
    violations["replays"] = [f"{stats.counts['replay mismatches']} replayed answers differed"] \
        if stats.counts["replay mismatches"] else []
    outage = [e for e in stats.server_errors if stats.during("postgres", e[2], e[3])]
    # A replica paused inside a transaction past PostgreSQL's idle-in-transaction
    # timeout finds its session ended when it resumes: a 503 to retry, never a 500.
    resumed = [e for e in stats.server_errors if e not in outage and e[1] == 503
               and stats.during("replica", e[2], e[3])]
    violations["5xx"] = [f"{e[0]}: {e[1]} {e[4]}" for e in stats.server_errors if e not in outage + resumed]
    proxy_faulted = [e for e in stats.proxy_errors if stats.during("replica", e[2], e[3])
                     or stats.during("postgres", e[2], e[3])]
    violations["proxy 5xx"] = [f"{e[0]}: {e[1]} from nginx with no fault active" for e in stats.proxy_errors
                               if e not in proxy_faulted]
    violations["faults"] = stats.fault_errors
    violations["memory"] = [f"replica-{i}: peak RSS {kib / 1024:.0f} MiB > {MEMORY_BOUND_MIB} MiB"
                            for i, kib in enumerate(p.peak_rss) if kib > MEMORY_BOUND_MIB * 1024]

    kinds = collections.defaultdict(collections.Counter)
    for (kind, status), n in stats.requests.items():
        kinds[kind][status] += n
    total = sum(stats.requests.values())
    print(f"chaos: ran {run_seconds:.0f} s, settled in {settle_seconds:.0f} s; seed {args.seed}")
    print(f"  requests: {total} ({total / run_seconds:.0f}/s) by kind and status:")
    for kind in sorted(kinds):
        print(f"    {kind:22s} " + ", ".join(f"{s}: {n}" for s, n in sorted(kinds[kind].items())))
    print("  a 4xx of each kind: " + "; ".join(f"{k} {s}: {d}" for (k, s), d in sorted(stats.samples.items())))
    print("  faults: " + ", ".join(f"{k[7:]} {n}" for k, n in sorted(stats.counts.items()) if k.startswith("fault: "))
          + f"; grants revoked {stats.counts['grant revoked']}, restored {stats.counts['grant restored']}; "
          f"receiver modes {dict(p.receiver.modes_seen)}")
    upgraded = psql(url, "SELECT kind, count(*) FROM deployment_events GROUP BY 1 ORDER BY 1")
    print(f"  changes: {dict((k, int(n)) for k, n in upgraded)}; operations {len(world.operations)} "
          f"({dict(psql(url, 'SELECT status, count(*) FROM operations GROUP BY 1'))}), rollouts {len(world.rollouts)} "
          f"({dict(psql(url, 'SELECT status, count(*) FROM rollouts GROUP BY 1'))}); settle nudges {dict(nudged)}")
    duplicates = sum(n - 1 for n in accepted.values())
    events = int(psql(url, "SELECT count(*) FROM webhook_events")[0][0])
    print(f"  webhooks: {events} outbox events, {len(accepted)} delivered with a 2xx, {duplicates} duplicates "
          f"received; receiver answers {answers}; signatures failed {len(unverified)}")
    print(f"  idempotent replays compared {stats.counts['replays compared']}, differed "
          f"{stats.counts['replay mismatches']}; 5xx while PostgreSQL was down {len(outage)}, 503 from a paused replica's "
          f"ended session {len(resumed)}; nginx 502/504 during "
          f"a replica fault {len(proxy_faulted)}")
    print("  peak RSS: " + ", ".join(f"replica-{i} {kib / 1024:.0f} MiB" for i, kib in enumerate(p.peak_rss))
          + f" (bound {MEMORY_BOUND_MIB} MiB)")
    count = sum(len(v) for v in violations.values())
    print(f"  violations: {count}" + ("" if not count else " (" + ", ".join(
        f"{k} {len(v)}" for k, v in violations.items() if v) + ")"))
    for kind, lines in violations.items():
        for line in lines[:10]:
            print(f"    {kind}: {line}")
    return count > 0


if __name__ == "__main__":
    main()
