"""UiPath's Python SDK (`uipath` on PyPI) against uplift, through the SDK's own code:

- the token: `uipath.platform.identity.IdentityService(domain)` with the client
  credentials flow, the one that takes a base URL. (`UiPath(client_id=…)` goes through
  `ExternalApplicationService`, which pins the identity host to UiPath's cloud for any
  base URL not on uipath.com: not usable against a self-hosted server, and the
  network guard would refuse it.)
- the Apps calls: the SDK has no Apps service, so `UiPath(...).api_client.request`, the
  generic request its services are built on (its auth header, user agent, retries, folder
  header, error wrapping), with `UIPATH_SERVICE_URL_APPS` redirecting `apps_/...` paths to
  uplift and `UIPATH_TENANT_ID` giving the tenant header it then sends.
- errors: `EnrichedException.error_info`, the SDK's extraction of message, code and
  trace id, reading uplift's problem+json.
"""

import os
import uuid

import common
from common import check

# Set before the SDK reads them (it reads them per request; set here once for all).
os.environ["UIPATH_SERVICE_URL_APPS"] = f"{common.BASE}/{common.ORG}/apps_"
os.environ["UIPATH_TENANT_ID"] = common.TENANT
os.environ["UIPATH_FOLDER_KEY"] = common.FOLDER_KEY
os.environ["UIPATH_TELEMETRY_ENABLED"] = "false"

from uipath.platform import UiPath  # noqa: E402
from uipath.platform.errors import EnrichedException  # noqa: E402
from uipath.platform.identity import IdentityService  # noqa: E402

APPS = "apps_/default/api/v1/default"


def main():
    identity = IdentityService(common.BASE)
    # The SDK's default scope is OR.Execution (UiPath's CI guide); uplift accepts it
    # beside its own scopes.
    token = identity.get_client_credentials_token(
        common.CLIENT_ID, common.CLIENT_SECRET, scope=f"{common.SCOPE} OR.Execution"
    )
    check(token.access_token and token.token_type == "Bearer", "IdentityService got a bearer token", token)
    check(token.expires_in and token.expires_in > 0, "the token answer carries expires_in", token.expires_in)
    check("OR.Execution" in (token.scope or ""), "the token was granted the SDK's default scope", token.scope)

    # The base URL's org/tenant are what the SDK puts before un-overridden paths; with
    # the Apps override in place they are not used for these calls.
    sdk = UiPath(base_url=f"{common.BASE}/{common.ORG}/{common.TENANT}", secret=token.access_token)
    api = sdk.api_client

    package = f"SDK App {uuid.uuid4().hex[:8]}"

    def publish(version):
        response = api.request(
            "POST",
            f"{APPS}/models/apps/codedapp/publish",
            json={"packageName": package, "packageVersion": version, "title": package, "tenantName": "DefaultTenant"},
        )
        return response.json()

    first = publish("1.0.0")
    check(first["definition"]["systemName"] == first["systemName"], "publish answers with definition.systemName", first)
    system_name = first["systemName"]

    deployed = []
    for i in range(2):
        response = api.request(
            "POST",
            f"{APPS}/models/{system_name}/publish/versions/1/deploy",
            json={"tags": ["sdk"], "routingName": f"sdk-{uuid.uuid4().hex[:10]}"},
            include_folder_headers=True,
        )
        deployed.append(response.json()["id"])
    check(len(set(deployed)) == 2, "deployed twice through the SDK's request (folder header from UIPATH_FOLDER_KEY)", deployed)

    second = publish("1.1.0")
    check(second["deployVersion"] == 2, "the second publish is deployVersion 2", second)

    bulk = api.request(
        "POST",
        f"{APPS}/models/deployed/apps/updateToLatestAppVersionBulk",
        json={"deploymentIds": deployed},
        include_folder_headers=True,
    ).json()
    updated = {u["id"]: u for u in bulk["updatedDeployments"]}
    check(set(updated) == set(deployed) and not bulk["failedItems"], "the bulk upgrade updated both", bulk)
    check(all(u["version"] == 2 for u in updated.values()), "both are on version 2", bulk)

    listing = api.request(
        "GET",
        f"{APPS}/models/deployed/apps",
        params={"top": 50, "searchText": system_name},
        include_folder_headers=True,
    ).json()
    mine = [d for d in listing["value"] if d["id"] in deployed]
    check(len(mine) == 2, "the list shows both deployments", listing)
    check(
        all(d["systemName"] == system_name and d["deployVersion"] == 2 and d["semVersion"] == "1.1.0" for d in mine),
        "the list carries UiPath's systemName, deployVersion and semVersion",
        mine,
    )

    # The SDK's error extraction on uplift's problem+json: an unknown orderBy field.
    try:
        api.request(
            "GET",
            f"{APPS}/models/deployed/apps",
            params={"orderBy": "nosuchfield asc"},
            include_folder_headers=True,
        )
        raise AssertionError("an unknown orderBy field was accepted")
    except EnrichedException as e:
        info = e.error_info
        check(e.status_code == 400, "the SDK raised EnrichedException with status 400", e.status_code)
        check(info is not None and "nosuchfield" in (info.message or ""), "error_info.message is the problem's detail", info)
        check(info.trace_id, "error_info.trace_id is the problem's trace id", info)

    # A folder the token has no right to: the SDK surfaces uplift's 403 the same way.
    try:
        api.request(
            "GET",
            f"{APPS}/models/deployed/apps",
            headers={"X-UiPath-FolderKey": str(uuid.uuid4())},
        )
        raise AssertionError("an unknown folder was accepted")
    except EnrichedException as e:
        check(e.status_code in (403, 404) and e.error_info and e.error_info.message, "an unknown folder is a problem with a message", (e.status_code, e.error_info))


common.run("uipath-sdk", main)
