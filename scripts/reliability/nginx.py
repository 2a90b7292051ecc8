"""nginx running deploy/nginx.conf in front of local uplift replicas (docker-compose's
topology without Docker), shared by scripts/proxy-check.py and scripts/chaos.py."""
import os
import re
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def nginx_binary():
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if found:
        return found
    print("installing nginx (Debian package)", flush=True)
    # Keep the package's service from starting on port 80: only our own instance runs.
    policy = "/usr/sbin/policy-rc.d"
    had_policy = os.path.exists(policy)
    if not had_policy:
        with open(policy, "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(policy, 0o755)
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "nginx"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
    finally:
        if not had_policy:
            os.remove(policy)
    return "/usr/sbin/nginx"


def local_config(replicas, port, workdir):
    """deploy/nginx.conf with the compose service names replaced by local addresses."""
    with open(os.path.join(ROOT, "deploy", "nginx.conf")) as f:
        conf = f.read()
    # The compose file's upstream lines, one per replica here (however many).
    pattern = re.compile(r"^( *)server uplift-\d+:8080( [^;]*);\n", re.M)
    first = pattern.search(conf)
    assert first, "deploy/nginx.conf has no upstream server uplift-N:8080"
    indent, options = first.groups()
    lines = "".join(f"{indent}server 127.0.0.1:{r.port}{options};\n" for r in replicas)
    conf = conf[:first.start()] + lines + pattern.sub("", conf[first.start():])
    conf, n = re.subn(r"listen 80;", f"listen 127.0.0.1:{port};", conf)
    assert n == 1, "deploy/nginx.conf does not listen on port 80"
    # Runtime files in the scratch directory rather than the system's.
    conf = f"pid {workdir}/nginx.pid;\n" + conf.replace(
        "http {", "http {\n" + "".join(
            f"    {kind}_temp_path {workdir}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")), 1)
    conf = conf.replace("access_log /dev/stdout;", f"access_log {workdir}/access.log;")
    path = os.path.join(workdir, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


