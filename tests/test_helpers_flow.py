"""The request-flow picture: a pure function of log entries, then the real log of real SDK calls."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from azure.communication.identity import CommunicationIdentityClient
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import DefaultAzureCredential
from helpers_kit import sp_credential

import helpers
from helpers.flow import MAX_STEPS, calling_host, flow_svg, steps_of, tidy

TENANT = "7b3c2a10-5d4e-4f6a-9b8c-1d2e3f4a5b6c"
SVG = "{http://www.w3.org/2000/svg}"

MI_REFUSED = {
    "id": 7, "time": 1795772664.79, "listener": "mi", "method": "GET",
    "path": "/hosts/vm-tutorial/metadata/identity/oauth2/token", "status": 400, "ms": 0.3,
    "credential": "managed-identity", "host": "vm-tutorial", "decision": "refused",
    "reason": "Identity not found",
}  # fmt: skip
MI_ISSUED = {
    "id": 8, "time": 1795772665.1, "listener": "mi", "method": "GET",
    "path": "/hosts/vm-tutorial/metadata/identity/oauth2/token", "status": 200, "ms": 0.4,
    "credential": "managed-identity", "host": "vm-tutorial", "decision": "issued",
    "caller": "vm-tutorial", "principal_id": "9f1c7d3e-8a4b-4c2d-9e8f-7a6b5c4d3e2f",
    "audience": "https://communication.azure.com/",
    "reason": "system-assigned identity of vm-tutorial",
}  # fmt: skip
ACS_ALLOWED = {
    "id": 9, "time": 1795772665.2, "listener": "https", "method": "POST", "path": "/identities",
    "status": 201, "ms": 1.1, "operation": "Identity.Create", "credential": "bearer",
    "caller": "vm-tutorial", "principal_id": "9f1c7d3e-8a4b-4c2d-9e8f-7a6b5c4d3e2f",
    "decision": "allowed",
    "reason": "role 'Contributor' applies at /subscriptions/3f2e1d0c-9b8a-4c7d-8e6f-5a4b3c2d1e0f"
    "/resourceGroups/rg-acs-tutorial/providers/Microsoft.Communication/communicationServices/"
    "acs-tutorial",
}  # fmt: skip
THROTTLED = {
    "id": 10, "time": 1795772665.3, "listener": "https", "method": "POST", "path": "/sms",
    "status": 429, "ms": 0.9, "operation": "Sms.Send", "credential": "hmac",
    "decision": "allowed", "reason": "signed with primaryKey", "fault": "throttle",
}  # fmt: skip


def token_entry(**extra):
    entry = {
        "id": 3, "time": 1795772664.5, "listener": "https", "method": "POST",
        "path": f"/{TENANT}/oauth2/v2.0/token", "status": 200, "ms": 1.3,
    }  # fmt: skip
    entry.update(extra)
    return entry


def texts(svg: str) -> list[str]:
    """Each label as one string (a wrapped label's lines joined by spaces)."""
    return [" ".join(t.itertext()) for t in ET.fromstring(svg).iter(f"{SVG}text")]


def test_one_arrow_pair_per_exchange_with_lanes_labels_and_decisions():
    svg = flow_svg([MI_REFUSED, MI_ISSUED, ACS_ALLOWED], title="create a user", actor="vm-tutorial")
    words = texts(svg)
    assert words[0] == "create a user"
    lanes = {
        t.text: float(t.get("x"))
        for t in ET.fromstring(svg).iter(f"{SVG}text")
        if t.get("font-weight") == "bold" and t.text != "create a user"
    }
    assert lanes["your code"] < lanes["identity endpoint"] < lanes["Communication Services"]
    assert "token request (managed identity)" in words
    assert "✗ 400 · refused: Identity not found" in words
    assert "token for communication.azure.com (managed identity)" in words
    assert "✓ 200 · issued: system-assigned identity of vm-tutorial" in words
    assert "create user (Entra token)" in words
    assert "✓ 201 · allowed: role 'Contributor' applies at acs-tutorial" in words
    # two arrows (request, answer) per exchange: 3 exchanges -> 3 solid + 3 dashed lines
    lines = list(ET.fromstring(svg).iter(f"{SVG}line"))
    assert sum(1 for x in lines if x.get("stroke-width") == "1.6") == 6


def test_your_code_runs_where_its_tokens_came_from():
    assert calling_host([MI_REFUSED, MI_ISSUED, ACS_ALLOWED], "vm-tutorial") == "vm-tutorial"
    func = dict(MI_ISSUED, host="func-tutorial", path="/hosts/func-tutorial/msi/token")
    assert calling_host([MI_ISSUED, func], "func-tutorial") == "vm-tutorial, func-tutorial"
    assert calling_host([dict(MI_REFUSED, host="developer-laptop")], "developer") == "developer"
    assert calling_host([ACS_ALLOWED, THROTTLED], "service-principal") == "service-principal"
    assert calling_host([]) is None


def test_colours_follow_the_decision():
    svg = flow_svg([MI_REFUSED, ACS_ALLOWED, THROTTLED])
    fills = {" ".join(t.itertext()): t.get("fill") for t in ET.fromstring(svg).iter(f"{SVG}text")}
    assert fills["✗ 400 · refused: Identity not found"] == "#cf222e"
    assert fills["✓ 201 · allowed: role 'Contributor' applies at acs-tutorial"] == "#1a7f37"
    assert fills["⧗ 429 · sandbox fault 'throttle'"] == "#9a6700"


def test_no_times_ports_or_generated_ids_and_deterministic():
    entries = [
        token_entry(
            decision="denied",
            reason="AADSTS700016: app '0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f' not at "
            "https://127.0.0.1:48123/x; retry in about 12 seconds",
            credential="client-secret",
        ),
        MI_ISSUED,
    ]
    svg = flow_svg(entries, title="t")
    assert svg == flow_svg([dict(e, time=0, ms=99, id=1) for e in entries], title="t")
    assert "0f9e8d7c" not in svg and "9f1c7d3e" not in svg
    assert "48123" not in svg and "12 seconds" not in svg
    assert "1795772664" not in svg
    assert "✗ 200 · denied: AADSTS700016: app '…' not at sandbox/x; retry in about n seconds" in (
        texts(svg)
    )


def test_white_background_for_dark_themes_and_valid_accessible_svg():
    svg = flow_svg([ACS_ALLOWED], title='a <b> & "c"')
    root = ET.fromstring(svg)
    assert root.get("role") == "img" and root.get("aria-label") == 'a <b> & "c"'
    first = next(root.iter(f"{SVG}rect"))
    assert first.get("fill") == "#ffffff" and first.get("width") == root.get("width")
    assert root.find(f"{SVG}title").text == 'a <b> & "c"'


def test_hostile_text_is_escaped():
    evil = dict(MI_REFUSED, reason="<script>alert(1)</script>")
    svg = flow_svg([evil])
    assert "<script>" not in svg
    assert "✗ 400 · refused: <script>alert(1)</script>" in texts(svg)


def test_retries_collapse_and_pending_polls_are_left_out():
    pending = token_entry(decision="pending", reason="authorization_pending")
    entries = [THROTTLED, dict(THROTTLED, id=11), dict(THROTTLED, id=12), pending, pending]
    steps = steps_of(entries)
    assert len(steps) == 1 and steps[0].repeat == 3
    assert "send SMS (access key) ×3" in texts(flow_svg(entries))


def test_entra_labels_name_audience_credential_and_caller():
    entries = [
        {"listener": "https", "method": "GET", "status": 200,
         "path": f"/{TENANT}/v2.0/.well-known/openid-configuration"},
        token_entry(decision="issued", caller="sp-acs-tutorial", credential="client-secret",
                    audience="https://management.azure.com"),
        {"listener": "https", "method": "POST", "status": 200,
         "path": "/organizations/oauth2/v2.0/devicecode", "decision": "pending",
         "reason": "device code issued; waiting for sign-in", "credential": "device-code"},
        {"listener": "https", "method": "POST", "status": 200, "path": "/devicelogin",
         "decision": "approved", "caller": "developer@contoso", "credential": "password"},
        {"listener": "https", "method": "PUT", "status": 403,
         "path": "/subscriptions/x/providers/Microsoft.Authorization/roleAssignments/y",
         "operation": "Microsoft.Authorization/roleAssignments/write", "decision": "refused",
         "caller": "c0ffee00-1111-4222-8333-444455556666", "reason": "AuthorizationFailed: no"},
    ]  # fmt: skip
    words = texts(flow_svg(entries))
    assert "read tenant metadata (OpenID)" in words
    assert "token for management.azure.com (client secret)" in words
    assert "✓ 200 · issued to sp-acs-tutorial" in words
    assert "start device-code sign-in" in words
    assert "⧗ 200 · pending: device code issued; waiting for sign-in" in words
    assert "you (browser)" in words and "sign in and decide" in words
    assert "roleAssignments/write" in words
    assert "✗ 403 · refused: AuthorizationFailed: no" in words  # a GUID caller is not named


def test_empty_and_too_long():
    assert "No request reached the sandbox since the mark." in texts(flow_svg([]))
    many = [dict(MI_REFUSED, host=f"h{i}", path=f"/hosts/h{i}/x") for i in range(MAX_STEPS + 5)]
    words = texts(flow_svg(many[: MAX_STEPS + 5]))
    assert "… and 5 more exchanges not drawn" in words


def test_the_picture_reads_without_colour_and_has_a_text_alternative():
    svg = flow_svg([MI_REFUSED, MI_ISSUED, ACS_ALLOWED, THROTTLED], actor="vm-tutorial")
    root = ET.fromstring(svg)
    words = texts(svg)
    assert "✗ 400 · refused: Identity not found" in words  # a mark, not only red
    assert "⧗ 429 · sandbox fault 'throttle'" in words
    assert any(w.startswith("✓ green") and "✗ red" in w for w in words)  # the legend says so
    desc = root.find(f"{SVG}desc").text
    assert desc.startswith(
        "1. your code (vm-tutorial) to identity endpoint (vm-tutorial): token request "
        "(managed identity). Answer: 400 · refused: Identity not found."
    )
    assert "4. your code (vm-tutorial) to Communication Services: send SMS (access key)." in desc


def test_labels_stay_between_their_own_lifelines():
    """Each arrow's labels sit in the gap next to its leftmost lane and never reach across
    another lane's lifeline, however long they are (the lanes move apart instead)."""
    long_reason = dict(ACS_ALLOWED, reason="x" * 30 + " " + "y" * 40 + " " + "z" * 15)
    entries = [MI_ISSUED, token_entry(decision="issued", audience="https://management.azure.com",
               credential="client-secret", caller="sp-acs-tutorial"), long_reason]  # fmt: skip
    root = ET.fromstring(flow_svg(entries))
    lifelines = sorted(
        float(x.get("x1")) for x in root.iter(f"{SVG}line") if x.get("stroke-dasharray") == "3 3"
    )
    assert len(lifelines) == 4
    labels = [t for t in root.iter(f"{SVG}text") if t.get("text-anchor") == "start"]
    spans = [(float(t.get("x")), max(len(s) for s in t.itertext()) * 6.8) for t in labels[:-1]]
    for left, width in spans:  # the last text is the legend, under the picture
        assert not any(left < x < left + width for x in lifelines), (left, width, lifelines)
    wrapped = next(t for t in labels if "xxx" in "".join(t.itertext()))
    assert len(list(wrapped.iter(f"{SVG}tspan"))) == 1  # the long answer took two lines


def test_tidy_shortens_resource_ids_and_long_text():
    assert tidy("at /subscriptions/a/resourceGroups/rg/providers/X/y/acs-tutorial.") == (
        "at acs-tutorial"
    )
    assert len(tidy("x" * 200)) == 90


# -- live: the real log of real SDK calls ---------------------------------------------------------


def test_flow_draws_what_a_cell_caused(kit, shown):
    from IPython.display import SVG as SvgObject

    mark = kit.sandbox.mark()
    helpers.act_as("vm-tutorial")
    client = CommunicationIdentityClient(kit.acs_endpoint, DefaultAzureCredential())
    with pytest.raises(ClientAuthenticationError):
        client.create_user()  # the VM has no identity yet: the identity endpoint refuses
    helpers.act_as("service-principal")
    CommunicationIdentityClient(kit.acs_endpoint, sp_credential()).create_user()
    helpers.flow(mark, title="two callers")
    [picture] = shown
    assert isinstance(picture, SvgObject)
    words = texts(picture.data)
    # the host whose identity endpoint answered, then the kernel's persona at drawing time
    assert "(vm-tutorial, service-principal)" in words
    assert "identity endpoint" in words and "(vm-tutorial)" in words
    assert any(re.match(r"✗ 400 · refused", w) for w in words)
    assert "token for communication.azure.com (client secret)" in words
    assert "✓ 200 · issued to sp-acs-tutorial" in words
    assert "create user (Entra token)" in words
    assert any(w.startswith("✓ 201 · allowed: role 'Contributor' applies at") for w in words)
    assert str(kit.status["https_port"]) not in picture.data


def test_flow_needs_a_mark(kit):
    with pytest.raises(ValueError, match="kit.sandbox.mark"):
        helpers.flow(None)


def test_watch_draws_what_the_block_caused(kit, shown):
    helpers.act_as("service-principal")
    with helpers.watch("create a user"):
        CommunicationIdentityClient(kit.acs_endpoint, sp_credential()).create_user()
    [picture] = shown
    words = texts(picture.data)
    assert words[0] == "create a user"
    assert "create user (Entra token)" in words


def test_watch_draws_then_lets_the_refusal_through(kit, shown):
    helpers.act_as("vm-tutorial")
    client = CommunicationIdentityClient(kit.acs_endpoint, DefaultAzureCredential())
    with pytest.raises(ClientAuthenticationError):
        with helpers.watch("refused"):
            client.create_user()  # the VM has no identity yet
    [picture] = shown
    assert any(re.match(r"✗ 400 · refused", w) for w in texts(picture.data))


def test_watch_does_nothing_on_azure(monkeypatch, shown):
    from helpers import target
    from helpers.target import AZURE, Kit

    monkeypatch.setattr(target, "_current", Kit(AZURE, "https://x.y/", "s", "g", "n", "+1", ["+2"]))
    with helpers.watch("on Azure"):
        ran = True
    assert ran and shown == []
    with pytest.raises(KeyError):
        with helpers.watch("on Azure"):
            raise KeyError("the block's own error")
    assert shown == []


def test_a_function_apps_own_calls_are_drawn_from_its_lane():
    """A call to a Function app is logged when it ends, after the token and ACS requests the app
    made while serving it; the picture draws the call first, and those requests from the app."""
    mi = {"listener": "mi", "path": "/hosts/func-tutorial/msi/token", "host": "func-tutorial",
          "status": 200, "decision": "issued", "time": 10.1, "ms": 5}  # fmt: skip
    acs = {"listener": "https", "path": "/identities", "method": "POST", "status": 201,
           "decision": "allowed", "operation": "Identity.Create", "credential": "bearer",
           "time": 10.2, "ms": 5}  # fmt: skip
    call = {"listener": "https", "path": "/sites/func-tutorial/api/acs-token", "method": "GET",
            "status": 200, "decision": "allowed", "time": 10.0, "ms": 400}  # fmt: skip
    later = {**acs, "time": 11.0}  # after the call ended: the kernel's own request
    steps = steps_of([mi, acs, call, later])
    assert [(s.source, s.target) for s in steps] == [
        ("code", "site:func-tutorial"),
        ("site:func-tutorial", "mi:func-tutorial"),
        ("site:func-tutorial", "acs"),
        ("code", "acs"),
    ]
    assert steps[0].request == "GET /api/acs-token"
    # The app's token request is the app's: "your code" did not run on func-tutorial.
    assert calling_host([mi, acs, call], "developer") == "developer"
    assert "Function app" in flow_svg([mi, acs, call]) and "(func-tutorial)" in flow_svg([call])
