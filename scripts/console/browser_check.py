"""The operator console in a real browser: Debian's Chromium, headless, driven by
Playwright for Python, against a server seeded by `uplift seed --demo` (see
scripts/console-browser-check.sh, which starts it and installs what this needs).

Checked, in order, with the page's Content-Security-Policy in force:
  1. a wrong secret is refused in words with the trace id; sign-in with client
     credentials (the token endpoint);
  2. the fleet view of the demo's Operations folder shows its out-of-date count;
  3. a deployment titled `<img src=x onerror=alert(1)>` renders as those characters;
  4. three deployments selected, Preview (a dry run) lists them, Upgrade starts an
     operation whose progress reaches the end, and its final JSON downloads;
  5. the deployment's history shows the upgrade with the operation id, and Roll back
     records a rollback; "all matching the filter" previews a subfolder's every
     match through a dry-run operation and changes nothing;
  6. the operations list; sign-out forgets the token;
  7. the viewer (a role in the subfolder only) sees that folder alone, signs in by
     keyboard alone (focus order, a visible focus ring) and
     their token (AutomationUser) sees Upgrade, Cancel and Roll back disabled with the
     API's reason;
  8. at 375 px the fleet view needs no sideways scrolling; a pasted bearer token signs
     in too, and neither token is kept in the address, storage or cookies; a folder of
     3,000 (`uplift seed --deployments`) pages, and "all matching" upgrades as one
     operation that Cancel stops part-way;
  9. axe-core reports no serious or critical violation on any view;
 10. no dialog opened and no console error or page error happened; markup assigned
     to innerHTML is refused (Trusted Types, from the CSP).
Screenshots of every view go to --shots. Exit status 0 only when all of it held.
"""

import argparse
import json
import re
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

HOSTILE = "<img src=x onerror=alert(1)>"


def main():
    parser = argparse.ArgumentParser()
    for name in ("--base", "--demo", "--volume", "--admin", "--viewer", "--axe", "--shots"):
        parser.add_argument(name, required=True)
    parser.add_argument("--screenshot")
    args = parser.parse_args()
    started = time.monotonic()
    demo = json.loads(Path(args.demo).read_text())
    admin = json.loads(Path(args.admin).read_text())
    viewer = json.loads(Path(args.viewer).read_text())
    volume = json.loads(Path(args.volume).read_text())
    tenant = demo["tenantId"]
    folder = demo["folders"]["operations"]["key"]
    in_folder = [d for d in demo["deployments"] if d["folderKey"] == folder]
    versions = {a["systemName"]: len(a["versions"]) for a in demo["apps"]}
    expected_outdated = sum(1 for d in in_folder if d["version"] < versions[d["appSystemName"]])

    # The hostile title, set through the API as any client could.
    token = client_token(args.base, admin)
    base_path = demo["baseUrl"].split("127.0.0.1", 1)[1].split("/", 1)[1]
    hostile_id = in_folder[-1]["id"]
    api(
        args.base,
        "PATCH",
        f"/{base_path}/models/deployed/apps/{hostile_id}",
        token,
        tenant,
        folder,
        {"title": HOSTILE},
    )

    axe_source = Path(args.axe).read_text()
    shots = Path(args.shots)
    problems = []  # dialogs, console errors, page errors
    audits = {}

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        # Nothing but this server: a request anywhere else fails the check.
        outside = []
        context.route(lambda url: not url.startswith(args.base), lambda route: (outside.append(route.request.url), route.abort()))
        page = context.new_page()
        page.on("dialog", lambda d: (problems.append(f"dialog: {d.type} {d.message}"), d.dismiss()))
        # The browser logs an answer the check provokes as a failed load: the refused
        # sign-in (401), and while the viewer is signed in the console's permission
        # probe (a dry run the API refuses with 403). Those, and only those, are expected.
        phase = {"allowed": None}

        def on_console(message):
            if message.type != "error":
                return
            if phase["allowed"] and message.text.startswith("Failed to load resource") and phase["allowed"] in message.text:
                return
            problems.append(f"console error: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.set_default_timeout(15000)

        def audit(name):
            """axe-core on the page as it is now; serious or critical violations fail."""
            page.evaluate(axe_source)
            result = page.evaluate(
                "async () => { const r = await axe.run(document, {resultTypes: ['violations']});"
                " return r.violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length,"
                " help: v.help, targets: v.nodes.slice(0, 3).map(n => n.target.join(' '))})); }"
            )
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
            bad = [v for v in result if v["impact"] in ("serious", "critical")]
            audits[name] = (len(result), bad)
            if bad:
                problems.append(f"axe on {name}: " + json.dumps(bad))

        # 1. Sign in with client credentials.
        page.goto(f"{args.base}/console/")
        expect(page.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()
        audit("sign-in")
        # A refused sign-in is said in words, with the trace id of the refusal.
        phase["allowed"] = "status of 401"
        sign_in(page, tenant, dict(admin, client_secret="wrong-secret"), expect_signed_in=False)
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("Signing in failed")
        expect(alert).to_contain_text("HTTP 401")
        expect(alert.locator("[data-trace-id]")).to_have_text(re.compile(r"^[0-9a-f-]{36}$"))
        audit("sign-in-refused")
        phase["allowed"] = None
        sign_in(page, tenant, admin)

        # 2. The fleet view and its out-of-date count.
        outdated = page.locator("[data-count=outdated]")
        expect(outdated).to_have_text(str(expected_outdated))
        expect(page.locator("[data-count=total]")).to_have_text(str(len(in_folder)))
        expect(page.locator("table.fleet tbody tr")).to_have_count(len(in_folder))
        # 3. The hostile title is text: the link shows the characters, no <img> exists.
        hostile_link = page.locator(f"table.fleet tr[data-id='{hostile_id}'] td a")
        expect(hostile_link).to_have_text(HOSTILE)
        if page.locator("main img").count() != 0:
            problems.append("the hostile title became an element")
        page.wait_for_selector("#versions-heading")
        audit("fleet")
        if args.screenshot:
            page.screenshot(path=args.screenshot, full_page=False)

        # 4. Select three, preview, upgrade, follow to the end, download the answer.
        rows = page.locator("table.fleet tbody tr")
        chosen = [rows.nth(i).get_attribute("data-id") for i in range(3)]
        for i in range(3):
            rows.nth(i).locator("input[type=checkbox]").check()
        expect(page.get_by_text("3 selected")).to_be_visible()
        page.get_by_role("button", name="Preview").click()
        preview = page.locator("table.preview tbody tr")
        expect(preview).to_have_count(3)
        expect(page.locator("table.preview")).to_contain_text("would be upgraded")
        audit("preview")
        page.get_by_role("button", name="Upgrade", exact=True).click()
        page.wait_for_url("**/console/#/operation/**")
        operation_id = page.url.split("#/operation/", 1)[1].split("?", 1)[0]
        expect(page.locator("[data-status] strong")).to_have_text("Succeeded", timeout=60000)
        bar = page.locator("progress")
        expect(bar).to_have_attribute("value", "3")
        expect(bar).to_have_attribute("max", "3")
        expect(page.locator("[data-counter=updated]")).to_have_text("3")
        audit("operation")
        with page.expect_download() as download:
            page.get_by_role("button", name="Download JSON").click()
        final = json.loads(Path(download.value.path()).read_text())
        if final.get("id") != operation_id or final["counters"]["updated"] != 3 or final["status"] != "Succeeded":
            problems.append(f"the downloaded JSON is not the finished operation: {final}")

        # 5. History shows the upgrade with the operation id; roll it back.
        page.goto(f"{args.base}/console/#/deployment/{chosen[0]}?folder={folder}")
        upgrade_event = page.locator(f"li[data-kind=upgrade] a[data-operation-id='{operation_id}']")
        expect(upgrade_event).to_be_visible()
        audit("history")
        page.get_by_role("button", name="Roll back to the previous version").click()
        expect(page.locator("ol.timeline li").first).to_have_attribute("data-kind", "rollback")
        expect(page.locator("#status")).to_contain_text("Rolled back")

        # 5b. "All matching the filter" in the subfolder: a dry-run operation over the
        # selector previews every match and changes nothing.
        payroll = demo["folders"]["payroll"]["key"]
        in_payroll = [d for d in demo["deployments"] if d["folderKey"] == payroll]
        page.goto(f"{args.base}/console/#/fleet?folder={payroll}")
        expect(page.locator("h1")).to_have_text("Fleet: Operations/Payroll")
        expect(page.locator("[data-count=outdated]")).to_have_text(str(len(in_payroll)))
        page.get_by_label("All matching the filter").check()
        page.get_by_role("button", name="Preview").click()
        page.wait_for_url("**/console/#/operation/**")
        preview_id = page.url.split("#/operation/", 1)[1].split("?", 1)[0]
        expect(page.locator("[data-status] strong")).to_have_text("Succeeded", timeout=60000)
        expect(page.locator("h1")).to_contain_text("Preview")
        expect(page.locator("table.preview tbody tr")).to_have_count(len(in_payroll))
        audit("preview-all-matching")
        page.get_by_role("link", name="Back to the fleet").click()
        expect(page.locator("[data-count=outdated]")).to_have_text(str(len(in_payroll)))

        # 6. The operations list, then sign out.
        page.get_by_role("link", name="Operations").click()
        expect(page.get_by_role("heading", name="Operations")).to_be_visible()
        page.get_by_label("Folder").select_option(folder)
        expect(page.get_by_role("link", name=operation_id)).to_be_visible()
        audit("operations")
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()

        # 7. A viewer sees Upgrade disabled, with the reason the API gave.
        phase["allowed"] = "status of 403"
        sign_in_by_keyboard(page, tenant, viewer, problems)
        page.get_by_role("link", name="Fleet").click()
        # The viewer's role is in Payroll only: the picker offers that folder alone (not
        # the folders the administrator saw before in this tab), as a top folder.
        expect(page.locator("h1")).to_have_text("Fleet: Payroll")
        expect(page.locator("select[name=folder] option")).to_have_count(1)
        expect(page.locator("[data-count=outdated]")).to_have_text(str(len(in_payroll)))
        upgrade = page.get_by_role("button", name="Upgrade", exact=True)
        expect(upgrade).to_be_disabled()
        expect(page.get_by_role("button", name="Preview")).to_be_disabled()
        expect(page.locator("p.reason")).to_contain_text("Apps.Edit")
        audit("fleet-viewer")
        page.goto(f"{args.base}/console/#/operation/{preview_id}?folder={payroll}")
        expect(page.locator("[data-status] strong")).to_have_text("Succeeded")
        expect(page.get_by_role("button", name="Cancel")).to_be_disabled()
        expect(page.locator("p.reason")).to_contain_text("Apps.Edit")
        page.goto(f"{args.base}/console/#/deployment/{in_payroll[0]['id']}?folder={payroll}")
        expect(page.get_by_role("button", name="Roll back to the previous version")).to_be_disabled()
        expect(page.locator("p.reason")).to_contain_text("Apps.Edit")
        page.goto(f"{args.base}/console/#/fleet?folder={payroll}")
        expect(upgrade).to_be_disabled()

        # Sorting from a column header: the API's order, shown with aria-sort.
        titles = page.locator("table.fleet tbody tr td:nth-child(2)").all_inner_texts()
        page.get_by_role("button", name="Title: sort descending").click()
        expect(page.locator("th[aria-sort=descending]")).to_contain_text("Title")
        expect(page.locator("table.fleet tbody tr td:nth-child(2)").first).to_have_text(sorted(titles)[-1])
        page.get_by_role("button", name="Title: sort ascending").click()
        expect(page.locator("th[aria-sort=ascending]")).to_contain_text("Title")

        # 8. At 375 px nothing needs sideways scrolling.
        page.set_viewport_size({"width": 375, "height": 800})
        page.wait_for_timeout(200)
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > 375:
            problems.append(f"at 375 px the fleet view is {width} px wide")
        audit("fleet-375")

        # 9b. A pasted bearer token (its tenant from the token's claim), kept nowhere
        # but in memory: not in the address, storage or cookies.
        page.set_viewport_size({"width": 1280, "height": 900})
        page.get_by_role("button", name="Sign out").click()
        pasted = page.locator("form", has=page.get_by_role("heading", name="Sign in with a bearer token"))
        pasted.get_by_label("Bearer token").fill(token)
        pasted.get_by_role("button", name="Use this token").click()
        expect(page.locator("#who-text")).to_contain_text(f"in tenant {tenant}")
        page.get_by_role("link", name="Fleet").click()
        expect(page.locator("[data-count=total]")).to_be_visible()
        kept = page.evaluate("() => ({storage: localStorage.length + sessionStorage.length, cookie: document.cookie})")
        if token in page.url or kept["storage"] or kept["cookie"]:
            problems.append(f"the token or a cookie was kept outside memory: {page.url} {kept}")
        for entry in context.cookies():
            problems.append(f"a cookie was set: {entry['name']}")

        # 9c. A folder of thousands: paged by the API; every match upgraded as one
        # operation, followed live and canceled part-way.
        page.get_by_role("button", name="Sign out").click()
        pasted = page.locator("form", has=page.get_by_role("heading", name="Sign in with a bearer token"))
        pasted.get_by_label("Tenant").fill(volume["tenantId"])
        pasted.get_by_label("Bearer token").fill(volume["token"])
        pasted.get_by_role("button", name="Use this token").click()
        page.goto(f"{args.base}/console/#/fleet?folder={volume['folderKey']}")
        count = volume["deployments"]
        expect(page.locator("[data-count=total]")).to_have_text(str(count))
        expect(page.locator("[data-count=outdated]")).to_have_text(str(count))
        expect(page.locator("table.fleet tbody tr")).to_have_count(50)
        page.get_by_role("button", name="Next page").click()
        expect(page.get_by_text(f"51–100 of {count}")).to_be_visible()
        page.get_by_label("All matching the filter").check()
        page.get_by_role("button", name="Upgrade", exact=True).click()
        page.wait_for_url("**/console/#/operation/**")
        expect(page.locator("[data-status] strong")).to_have_text("Running", timeout=30000)
        page.wait_for_function("() => Number(document.querySelector('progress').value) > 0")
        page.get_by_role("button", name="Cancel").click()
        expect(page.locator("[data-status] strong")).to_have_text("Canceled", timeout=60000)
        counters = {name: int(page.locator(f"[data-counter={name}]").inner_text())
                    for name in ("total", "updated", "canceled", "pending", "running", "failed")}
        if not (counters["total"] == count and counters["canceled"] > 0 and counters["updated"] > 0
                and counters["pending"] == 0 and counters["running"] == 0
                and counters["updated"] + counters["canceled"] + counters["failed"] == count):
            problems.append(f"the canceled operation's counters do not add up: {counters}")
        audit("operation-canceled")

        # 10. Markup is refused by the page's CSP (Trusted Types), not only avoided.
        refused = page.evaluate(
            "() => { try { document.createElement('div').innerHTML = '<b>x</b>'; return false; }"
            " catch (e) { return e instanceof TypeError; } }"
        )
        if not refused:
            problems.append("innerHTML accepted a string: Trusted Types are not enforced")
        # axe itself can fail: an unlabelled field must be reported.
        page.evaluate("() => document.querySelector('main').append(document.createElement('input'))")
        page.evaluate(axe_source)
        caught = page.evaluate("async () => (await axe.run(document)).violations.map(v => v.id)")
        if "label" not in caught:
            problems.append(f"axe did not report an unlabelled input: {caught}")
        if outside:
            problems.append(f"requests outside the server: {outside}")
        browser.close()

    # The Trusted Types refusal above logs its own console error; that one is expected.
    problems = [p for p in problems if "TrustedHTML" not in p and "Trusted Type" not in p]
    for name, (count, bad) in audits.items():
        print(f"console-browser-check: axe on {name}: {count} violations, {len(bad)} serious or critical")
    print(f"console-browser-check: out of date {expected_outdated}, upgraded 3 in operation {operation_id}, "
          f"rolled back 1; of {volume['deployments']}, {counters['updated']} upgraded and {counters['canceled']} "
          f"canceled; {len(audits)} views audited, {time.monotonic() - started:.1f} s")
    if problems:
        for problem in problems:
            print(f"console-browser-check: FAIL {problem}", file=sys.stderr)
        sys.exit(1)
    print("console-browser-check: ok")


def sign_in(page, tenant, client, expect_signed_in=True):
    form = page.locator("form", has=page.get_by_role("heading", name="Sign in with client credentials"))
    form.get_by_label("Tenant").fill(tenant)
    form.get_by_label("Client id").fill(client["client_id"])
    form.get_by_label("Client secret").fill(client["client_secret"])
    form.get_by_role("button", name="Sign in").click()
    if expect_signed_in:
        expect(page.locator("#who")).to_be_visible()
    if client["client_secret"] in page.url:
        raise SystemExit("the secret reached the URL")


def sign_in_by_keyboard(page, tenant, client, problems):
    """The sign-in form by keyboard alone: the tenant field has the focus, Tab moves
    through the fields in order, each with a visible focus ring, Enter submits."""
    def focused():
        return page.evaluate(
            "() => { const e = document.activeElement; const s = getComputedStyle(e);"
            " return {name: e.getAttribute('name') || e.textContent, outline: s.outlineStyle,"
            " width: parseFloat(s.outlineWidth)}; }"
        )
    for value, name in ((tenant, "tenant"), (client["client_id"], "client_id"), (client["client_secret"], "client_secret")):
        where = focused()
        if where["name"] != name:
            problems.append(f"keyboard: expected the focus on {name}, it is on {where['name']}")
        if where["outline"] == "none" or where["width"] < 2:
            problems.append(f"keyboard: no visible focus on {name}: {where}")
        page.keyboard.type(value)
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#who")).to_be_visible()


def client_token(base, client):
    form = f"grant_type=client_credentials&client_id={client['client_id']}&client_secret={client['client_secret']}"
    request = urllib.request.Request(
        f"{base}/identity_/connect/token",
        data=form.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["access_token"]


def api(base, method, path, token, tenant, folder, body):
    request = urllib.request.Request(
        f"{base}{path}",
        method=method,
        data=json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {token}",
            "X-UiPath-Internal-TenantId": tenant,
            "X-UiPath-FolderKey": folder,
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


if __name__ == "__main__":
    main()
