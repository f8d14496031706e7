"""The few web pages Entra ID shows a person: the device-code sign-in and error explanations.

Plain HTML with inline styles and no external assets, so it works offline, in any browser and
with a screen reader: one form, labelled fields, errors announced with ``role="alert"``.
"""

from __future__ import annotations

from html import escape

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - Sandbox Entra ID</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 32rem; margin: 2rem auto;
       padding: 0 1rem; line-height: 1.5; color: #1b1b1b; }}
label {{ display: block; margin-top: 1rem; font-weight: 600; }}
input {{ font-size: 1rem; padding: .4rem; width: 100%; box-sizing: border-box; }}
button {{ font-size: 1rem; padding: .5rem 1.2rem; margin: 1.2rem .5rem 0 0; }}
.alert {{ border-left: 4px solid #a4262c; background: #fde7e9; padding: .5rem 1rem; }}
.ok {{ border-left: 4px solid #107c10; background: #dff6dd; padding: .5rem 1rem; }}
small {{ color: #555; }}
</style>
</head>
<body>
<main>
<p><small>Contoso Sandbox &middot; a local stand-in for Microsoft Entra ID</small></p>
<h1>{title}</h1>
{content}
</main>
</body>
</html>
"""


def page(title: str, content: str) -> str:
    return _PAGE.format(title=escape(title), content=content)


def device_login_form(
    *, code: str = "", username: str = "", error: str | None = None, hint: str = ""
) -> str:
    alert = f'<p class="alert" role="alert">{escape(error)}</p>' if error else ""
    content = f"""{alert}
<p>Enter the code shown by the app or device you are signing in to, then sign in as the
sandbox's developer.</p>
<form method="post" action="/devicelogin">
<label for="otc">Code</label>
<input id="otc" name="otc" value="{escape(code)}" autocomplete="one-time-code"
       autocapitalize="characters" spellcheck="false" required>
<label for="username">User name</label>
<input id="username" name="username" type="email" value="{escape(username)}"
       autocomplete="username" placeholder="{escape(hint)}" required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit" name="action" value="approve">Sign in</button>
<button type="submit" name="action" value="deny">Cancel this sign-in</button>
</form>
<p><small>The password is in your sandbox: run <code>python -m sandbox password</code>.</small></p>
"""
    return page("Enter code", content)


def device_login_done(*, approved: bool, client_name: str, resource: str) -> str:
    if approved:
        content = (
            f'<p class="ok" role="status">You have signed in to the {escape(client_name)} '
            "application on your device. You may now close this window.</p>"
            f"<p>It may now call <code>{escape(resource)}</code> on your behalf.</p>"
        )
        return page("You're signed in", content)
    content = (
        f'<p class="ok" role="status">You canceled the sign-in to {escape(client_name)}. '
        "The app will be told that access was denied. You may now close this window.</p>"
    )
    return page("Sign-in canceled", content)


# One line each for the codes the sandbox sends, so an error_uri leads somewhere useful.
ERROR_HELP = {
    50027: "The client assertion is not a well-formed JWT, or its type parameter is wrong.",
    50034: "No such user in this directory: check the user name.",
    50126: "Wrong user name or password.",
    50194: "A single-tenant app used /common or /organizations; use the tenant id instead.",
    54005: "The device code was already redeemed; start the sign-in again.",
    65004: "The person signing in canceled the sign-in.",
    70000: "The grant (device code or refresh token) is invalid, revoked or for another client.",
    70003: "The grant_type is not one this endpoint supports.",
    70011: "The scope parameter is malformed.",
    70016: "Nobody has entered the code yet; keep polling.",
    70020: "The device code expired before anyone signed in; start again.",
    70021: "The federated token's issuer, subject or audience matches no federated credential.",
    90002: "No such tenant: check the tenant id or domain in the authority URL.",
    500011: "The resource (the part of the scope before /.default) is unknown to the tenant.",
    700016: "No app with this client id exists in the tenant.",
    700024: "The client assertion has expired or is not valid yet.",
    700025: "A public client (such as the Azure CLI) must not send a secret or an assertion.",
    700027: "The client assertion's signature does not verify.",
    700082: "The refresh token expired; sign in again.",
    900144: "A required parameter is missing from the request body.",
    900561: "The token endpoint only accepts POST.",
    1002012: "Apps signing in as themselves must ask for <resource>/.default.",
    7000215: "Wrong client secret: send the secret's value, not its id.",
    7000218: "A confidential client must send client_secret or client_assertion.",
    28000: "A token is for one resource: ask for one resource's scopes per request.",
}


def error_help(code: str) -> tuple[int, str]:
    try:
        number = int(code)
    except ValueError:
        number = 0
    text = ERROR_HELP.get(number)
    if text is None:
        return 404, page("Unknown error code", "<p>The sandbox does not send this code.</p>")
    return 200, page(f"AADSTS{number}", f"<p>{escape(text)}</p>")


def browser_sign_in_unavailable() -> str:
    return page(
        "Browser sign-in is not available",
        "<p>The sandbox signs people in with the device-code flow only. Use "
        "<code>az login --use-device-code</code> or <code>DeviceCodeCredential</code>.</p>",
    )
