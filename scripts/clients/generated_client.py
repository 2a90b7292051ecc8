"""A client generated here and now by openapi-python-client from the served
/openapi.json walks uplift's lifecycle: token, publish, catalogue, deploy (with and
without a body), list, dry run, bulk, replay with an Idempotency-Key, history, rollback,
edit, Rainbond GET and POST, and a refusal.

Every answer is checked against the document (a response hook on the generated
client's httpx client): the status must be one the operation declares, the content
type the one declared for it, and the JSON body must validate against the declared
schema *strictly*: a field the document does not declare is an error (as if every
object had `additionalProperties: false`), and so is a required field left out.
"""

import json
import re
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import httpx
import jsonschema

import common
from common import check

work = Path(tempfile.mkdtemp(prefix="generated-", dir="."))
document = httpx.get(f"{common.BASE}/openapi.json").json()
(work / "openapi.json").write_text(json.dumps(document))
(work / "config.yaml").write_text("post_hooks: []\n")
subprocess.run(
    [
        str(Path(sys.executable).parent / "openapi-python-client"),
        "generate",
        "--path", str(work / "openapi.json"),
        "--meta", "none",
        "--output-path", str(work / "uplift_client"),
        "--config", str(work / "config.yaml"),
    ],
    check=True,
    stdout=subprocess.DEVNULL,
)
sys.path.insert(0, str(work))

from uplift_client import AuthenticatedClient, Client  # noqa: E402
from uplift_client.api.identity import organization_token, token  # noqa: E402
from uplift_client.api.operations import healthz, readyz  # noqa: E402
from uplift_client.api.rainbond import list_upgrades, upgrade_app_models  # noqa: E402
from uplift_client.api.ui_path_apps import (  # noqa: E402
    check_unique_name,
    deploy,
    edit_deployed_app,
    list_deployed_apps,
    publish_coded_app,
    published_apps,
    published_versions,
    update_to_latest_app_version_bulk,
)
from uplift_client.api.uplift_extensions import deployment_history, rollback_deployment  # noqa: E402
from uplift_client.models import (  # noqa: E402
    BulkUpgradeRequest,
    DeployRequest,
    EditRequest,
    MaintenanceModeData,
    PublishRequest,
    RollbackRequest,
    TokenRequest,
    UpgradeBase,
    UpgradeRequest,
)


# ---- checking answers against the document -------------------------------------------

def _template(path):
    pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$"
    return re.compile(pattern), path.count("{")


ROUTES = [(*_template(path), path, item) for path, item in document["paths"].items()]


def _operation(method, path):
    found = [(params, template, item[method]) for regex, params, template, item in ROUTES
             if method in item and regex.match(path)]
    if not found:
        raise AssertionError(f"{method.upper()} {path} is not in the document")
    params, template, operation = min(found, key=lambda f: f[0])
    return template, operation


def resolve(schema):
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema:
        node = document
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        schema = node
        seen += 1
        if seen > 50:
            raise AssertionError("a $ref loop")
    return schema


def undeclared(schema, instance, where):
    """Fields in `instance` that `schema` does not declare (strict additionalProperties)."""
    schema = resolve(schema)
    problems = []
    for key in ("oneOf", "anyOf"):
        if key in schema:
            branches = [b for b in schema[key] if jsonschema.Draft202012Validator(
                {**resolve(b), "components": document["components"]}).is_valid(instance)]
            if branches:
                problems += min((undeclared(b, instance, where) for b in branches), key=len)
            return problems
    properties = {}
    parts = [schema] + [resolve(s) for s in schema.get("allOf", [])]
    for part in parts:
        properties.update(part.get("properties", {}))
    open_ended = any(part.get("additionalProperties") not in (None, False) for part in parts)
    if isinstance(instance, dict) and (properties or not open_ended):
        for name, value in instance.items():
            if name in properties:
                problems += undeclared(properties[name], value, f"{where}.{name}")
            elif not open_ended and any("properties" in p or p.get("type") == "object" for p in parts):
                problems.append(f"{where}.{name} is not declared")
    if isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for i, value in enumerate(instance):
            problems += undeclared(schema["items"], value, f"{where}[{i}]")
    return problems


answers_checked = []


def check_answer(response: httpx.Response):
    response.read()
    request = response.request
    method, path = request.method.lower(), request.url.path
    template, operation = _operation(method, path)
    status = str(response.status_code)
    declared = operation["responses"].get(status) or operation["responses"].get(status[0] + "XX") \
        or operation["responses"].get("default")
    where = f"{method.upper()} {template} -> {status}"
    if declared is None:
        raise AssertionError(f"{where}: status not declared (body {response.text[:300]})")
    declared = resolve(declared)
    content = declared.get("content", {})
    if not content:
        if response.content:
            raise AssertionError(f"{where}: a body where the document declares none")
        answers_checked.append(where)
        return
    media = response.headers.get("content-type", "").split(";")[0].strip()
    matching = [c for c in content if c.split(";")[0].strip() == media]
    if not matching:
        raise AssertionError(f"{where}: content type {media!r}, the document declares {list(content)}")
    schema = content[matching[0]].get("schema")
    if schema is not None and (media.endswith("json")):
        body = response.json()
        root = {**schema, "components": document["components"]}
        errors = sorted(jsonschema.Draft202012Validator(root).iter_errors(body), key=str)
        if errors:
            raise AssertionError(f"{where}: the body does not match the document: "
                                 f"{errors[0].message} at {list(errors[0].absolute_path)}; body {body}")
        extra = undeclared(schema, body, "body")
        if extra:
            raise AssertionError(f"{where}: fields the document does not declare: {extra}; body {body}")
    answers_checked.append(where)


HOOKS = {"event_hooks": {"response": [check_answer]}}


# ---- the lifecycle ---------------------------------------------------------------------

def main():
    anonymous = Client(base_url=common.BASE, httpx_args=HOOKS, raise_on_unexpected_status=True)
    check(healthz.sync_detailed(client=anonymous).status_code == 200, "healthz")
    check(readyz.sync_detailed(client=anonymous).status_code == 200, "readyz")

    form = TokenRequest(grant_type="client_credentials", client_id=common.CLIENT_ID,
                        client_secret=common.CLIENT_SECRET, scope=common.SCOPE)
    answer = token.sync_detailed(client=anonymous, body=form)
    check(answer.status_code == 200 and answer.parsed.access_token, "token", answer.content)
    at_org = organization_token.sync_detailed(client=anonymous, body=form)
    check(at_org.status_code == 200, "token under the organization", at_org.content)
    refused = token.sync_detailed(client=anonymous, body=TokenRequest(
        grant_type="client_credentials", client_id=common.CLIENT_ID, client_secret="wrong"))
    check(refused.status_code == 401 and refused.parsed.error == "invalid_client", "a wrong secret", refused.content)

    api = AuthenticatedClient(base_url=common.BASE, token=answer.parsed.access_token, httpx_args=HOOKS,
                              raise_on_unexpected_status=True)
    tenant = {"x_ui_path_internal_tenant_id": common.TENANT}
    folder = {**tenant, "x_ui_path_folder_key": common.FOLDER_KEY}
    package = f"Generated {uuid.uuid4().hex[:8]}"

    published = publish_coded_app.sync_detailed(client=api, body=PublishRequest(
        package_name=package, package_version="1.0.0", title=package, tenant_name="DefaultTenant"), **tenant)
    check(published.status_code == 200, "publish 1.0.0", published.content)
    system_name = published.parsed.system_name
    check(published.parsed.definition.system_name == system_name, "publish answers definition.systemName")

    apps = published_apps.sync_detailed(common.TENANT, client=api, search_text=system_name, top=10, **tenant)
    check(apps.status_code == 200 and [a.system_name for a in apps.parsed.value] == [system_name],
          "published apps, searched", apps.content)
    versions = published_versions.sync_detailed(system_name, common.TENANT, client=api, **tenant)
    check(versions.status_code == 200 and versions.parsed.value[0].app_version == "1.0.0",
          "published versions carry appVersion", versions.content)

    with_body = deploy.sync_detailed(system_name, 1, client=api, body=DeployRequest(tags=["generated"]), **folder)
    check(with_body.status_code == 200, "deploy with a body", with_body.content)
    without_body = deploy.sync_detailed(system_name, 1, client=api, **folder)
    check(without_body.status_code == 200, "deploy without a body (the optional body left out)",
          without_body.content)
    ids = [with_body.parsed.id, without_body.parsed.id]

    free = check_unique_name.sync_detailed(f"free-{uuid.uuid4().hex[:8]}", client=api, **tenant)
    check(free.status_code == 200, "routing name check", free.content)

    listing = list_deployed_apps.sync_detailed(client=api, top=10, order_by="title asc",
                                               search_text=system_name, **folder)
    check(listing.status_code == 200 and sorted(d.id for d in listing.parsed.value) == sorted(ids),
          "list", listing.content)

    second = publish_coded_app.sync_detailed(client=api, body=PublishRequest(
        package_name=package, package_version="1.1.0"), **tenant)
    check(second.status_code == 200 and second.parsed.deploy_version == 2, "publish 1.1.0", second.content)

    dry = update_to_latest_app_version_bulk.sync_detailed(
        client=api, body=BulkUpgradeRequest(deployment_ids=ids), dry_run=True, **folder)
    check(dry.status_code == 200, "dry run", dry.content)

    key = str(uuid.uuid4())
    bulk = update_to_latest_app_version_bulk.sync_detailed(
        client=api, body=BulkUpgradeRequest(deployment_ids=ids), idempotency_key=key, **folder)
    check(bulk.status_code == 200 and len(bulk.parsed.updated_deployments) == 2, "bulk", bulk.content)
    replay = update_to_latest_app_version_bulk.sync_detailed(
        client=api, body=BulkUpgradeRequest(deployment_ids=ids), idempotency_key=key, **folder)
    check(replay.status_code == 200 and replay.content == bulk.content
          and replay.headers.get("idempotent-replayed") == "true", "replay with the Idempotency-Key",
          replay.headers)

    history = deployment_history.sync_detailed(ids[0], client=api, **folder)
    check(history.status_code == 200 and history.parsed.odata_count >= 2, "history", history.content)

    rolled = rollback_deployment.sync_detailed(ids[0], client=api, **folder)
    check(rolled.status_code == 200, "rollback without a body", rolled.content)
    rolled_to = rollback_deployment.sync_detailed(ids[1], client=api, body=RollbackRequest(version=1), **folder)
    check(rolled_to.status_code == 200, "rollback to a named version", rolled_to.content)

    edited = edit_deployed_app.sync_detailed(ids[0], client=api, body=EditRequest(
        title="Edited by the generated client", maintenance_mode_data=MaintenanceModeData(
            is_maintenance_mode_enabled=True, maintenance_mode_url="https://example.invalid/down")), **folder)
    check(edited.status_code == 200 and edited.parsed.maintenance_mode_data.is_maintenance_mode_enabled,
          "edit", edited.content)

    folder_id = int(common.FOLDER_ID)
    models = list_upgrades.sync_detailed(common.TENANT, "default", folder_id, client=api)
    check(models.status_code == 200 and any(m.app_model_id == system_name and m.can_upgrade for m in models.parsed),
          "Rainbond GET", models.content)
    upgraded = upgrade_app_models.sync_detailed(common.TENANT, "default", folder_id, client=api, body=UpgradeRequest(
        update_versions=[UpgradeBase(market_name="local", app_model_id=system_name, app_model_version="1.1.0")]))
    check(upgraded.status_code == 200, "Rainbond POST", upgraded.content)
    bad = upgrade_app_models.sync_detailed(common.TENANT, "default", folder_id, client=api, body=UpgradeRequest(
        update_versions=[UpgradeBase(market_name="local", app_model_id=system_name, app_model_version="9.9.9")]))
    check(bad.status_code == 400, "Rainbond refusal", bad.content)

    bare = AuthenticatedClient(base_url=common.BASE, token=answer.parsed.access_token, prefix="",
                               httpx_args=HOOKS, raise_on_unexpected_status=True)
    models = list_upgrades.sync_detailed(common.TENANT, "default", folder_id, client=bare)
    check(models.status_code == 200, "Rainbond GET with the bare token (the apiKey scheme)", models.content)

    # Refusals: each must be an answer the document declares, body and all.
    unknown_field = list_deployed_apps.sync_detailed(client=api, order_by="nosuchfield asc", **folder)
    check(unknown_field.status_code == 400 and "nosuchfield" in unknown_field.parsed.detail,
          "an unknown orderBy field is a 400 problem naming it", unknown_field.content)
    missing = deployment_history.sync_detailed(str(uuid.uuid4()), client=api, **folder)
    check(missing.status_code == 404, "the history of an unknown deployment is a 404 problem", missing.content)
    forged = AuthenticatedClient(base_url=common.BASE, token="not-a-token", httpx_args=HOOKS,
                                 raise_on_unexpected_status=True)
    unauthorized = list_deployed_apps.sync_detailed(client=forged, **folder)
    check(unauthorized.status_code == 401, "a bad token is a 401 problem", unauthorized.content)
    rainbond_unauthorized = list_upgrades.sync_detailed(common.TENANT, "default", folder_id, client=forged)
    check(rainbond_unauthorized.status_code == 401 and rainbond_unauthorized.parsed.code == 401,
          "a bad token on Rainbond is Rainbond's error body", rainbond_unauthorized.content)

    check(len(answers_checked) >= 25, f"{len(answers_checked)} answers matched the document strictly")


common.run("generated-client", main)
