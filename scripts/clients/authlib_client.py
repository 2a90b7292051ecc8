"""Authlib's OAuth 2 client (httpx integration) against uplift's token endpoint: the
client credentials grant with `client_secret_basic` and with `client_secret_post`, a
protected call with each token, and Authlib fetching a new token by itself once the one
it holds has expired (its `ensure_active_token`, for a client_credentials client).

Expiry is reached through Authlib's own token object: `expires_at` moved into the past,
as it would be an hour later. The fetch that follows is real (counted at the transport).
"""

import time

from authlib.integrations.httpx_client import OAuth2Client

import common
from common import check

LIST = f"{common.BASE}{common.UIPATH_BASE_PATH}/models/deployed/apps"
HEADERS = {"X-UiPath-Internal-TenantId": common.TENANT, "X-UiPath-FolderKey": common.FOLDER_KEY}


def client(auth_method, token_requests):
    def count(request):
        if request.url.path.endswith("/connect/token"):
            token_requests.append(request)

    return OAuth2Client(
        client_id=common.CLIENT_ID,
        client_secret=common.CLIENT_SECRET,
        token_endpoint_auth_method=auth_method,
        scope=common.SCOPE,
        token_endpoint=common.TOKEN_URL,
        grant_type="client_credentials",
        leeway=0,
        event_hooks={"request": [count]},
    )


def main():
    for method in ("client_secret_basic", "client_secret_post"):
        sent = []
        with client(method, sent) as session:
            token = session.fetch_token()
            check(token["token_type"].lower() == "bearer" and token["access_token"], f"{method}: a bearer token", token)
            check(token["expires_in"] > 0 and token["expires_at"] > time.time(), f"{method}: expires_in and expires_at", token)
            request = sent[-1]
            body = request.content.decode()
            if method == "client_secret_basic":
                check(request.headers.get("authorization", "").startswith("Basic "), "basic: credentials in Authorization")
                check("client_secret" not in body, "basic: no secret in the form", body)
            else:
                check("client_secret=" in body and "authorization" not in request.headers, "post: credentials in the form", body)
            check(token.get("scope") and set(common.SCOPE.split()) <= set(token["scope"].split()), f"{method}: the scopes granted", token.get("scope"))

            answer = session.get(LIST, headers=HEADERS)
            check(answer.status_code == 200, f"{method}: a protected call with the token", answer.text)

            # The token as Authlib holds it, an hour on: expired. Authlib must fetch a
            # new one before the next call, by itself.
            before = len(sent)
            session.token["expires_at"] = int(time.time()) - 1
            check(session.token.is_expired(), f"{method}: Authlib sees the token as expired")
            answer = session.get(LIST, headers=HEADERS)
            check(len(sent) == before + 1, f"{method}: Authlib fetched a new token after expiry", len(sent) - before)
            check(answer.status_code == 200, f"{method}: the call after the re-fetch succeeds", answer.text)
            check(not session.token.is_expired(), f"{method}: the new token is current", session.token)

    # A wrong secret: Authlib raises OAuthError carrying the RFC 6749 error code.
    from authlib.integrations.base_client.errors import OAuthError

    with OAuth2Client(
        client_id=common.CLIENT_ID,
        client_secret="wrong-secret",
        token_endpoint_auth_method="client_secret_basic",
        scope=common.SCOPE,
    ) as session:
        try:
            session.fetch_token(common.TOKEN_URL, grant_type="client_credentials")
            raise AssertionError("a wrong secret got a token")
        except OAuthError as e:
            check(e.error == "invalid_client", "a wrong secret is invalid_client to Authlib", e.error)


common.run("authlib", main)
