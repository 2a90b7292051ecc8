#!/usr/bin/env python3
"""For scripts/fuzz.sh: creates, on the seeded demo tenant, one of each resource the
operations, rollouts and webhooks routes name in their paths (an operation, a rollout,
a webhook endpoint with a delivery) and prints a schemathesis.toml whose
`[parameters]` give those ids, so schemathesis reaches the real handlers behind
`{operation_id}`, `{rollout_id}`, `{webhook_id}` and `{delivery_id}` rather than only
their 404s.

Usage: fuzz-fixtures.py DEMO_JSON   (the output of `uplift seed --demo`)"""
import json
import sys
import time
import urllib.request


def main():
    demo = json.load(open(sys.argv[1]))
    base = demo["baseUrl"]
    headers = {"Authorization": f"Bearer {demo['tokens']['administrator']}", "X-UiPath-Internal-TenantId":
               demo["tenantId"], "X-UiPath-FolderKey": demo["folders"]["operations"]["key"],
               "Content-Type": "application/json"}

    def post(path, body, expected):
        request = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == expected, (path, response.status)
            return json.loads(response.read() or b"null")

    def get(path):
        request = urllib.request.Request(base + path, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    # Nothing listens on port 9 of 127.0.0.1: the deliveries fail and are retried, harmlessly.
    webhook = post("/webhooks", {"url": "http://127.0.0.1:9/hook", "eventTypes": []}, 201)
    post(f"/webhooks/{webhook['id']}/test", {}, 202)
    apps = [a["systemName"] for a in demo["apps"]]
    operation = post("/operations/upgrades", {"selector": {"appSystemNames": apps[:1]}}, 202)
    rollout = post("/rollouts", {"name": "fuzz", "selector": {"appSystemNames": apps[1:2] or apps[:1]},
                                 "waves": [{"name": "all", "gate": "manual"}]}, 201)
    delivery = None
    for _ in range(100):
        page = get(f"/webhooks/{webhook['id']}/deliveries?top=1")
        if page["value"]:
            delivery = page["value"][0]["id"]
            break
        time.sleep(0.1)
    assert delivery, "the endpoint's test event made no delivery"
    print("[parameters]")
    for name, value in (("operation_id", operation["id"]), ("rollout_id", rollout["id"]),
                        ("webhook_id", webhook["id"]), ("delivery_id", delivery)):
        print(f'"path.{name}" = "{value}"')


main()
