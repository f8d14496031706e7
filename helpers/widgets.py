"""Interactive widgets (ipywidgets 8) for trying things without editing code.

Each widget is a small box of controls whose work is done in one plain method (``fetch``,
``explore``, ``apply``, ``try_call``, ``issue``, ``send``); the buttons only call that method,
so the same behaviour can be driven from code or tests by setting ``.value`` and calling
``.click()``. Results go into an ``HTML`` widget (``.result.value``), readable without a
browser. Tokens are shown as claims only, as everywhere in the kit.

In a saved notebook a widget shows as one line of text (its ``repr``) saying it needs a live
kernel; that line is what the notebook tests compare.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import timedelta
from typing import Any

import ipywidgets as w

from helpers import cloud, target
from helpers.display import Rich, countdown, esc, inbox_view, table, token_view, utc

ACS_SCOPE = cloud.ACS_SCOPE


def personas(kit: target.Kit) -> tuple[str, ...]:
    """The sandbox personas a widget can run as: the developer, the kit's two hosts, the SP."""
    return ("developer", kit.vm_name, kit.func_app_name, "service-principal")


# -- shared pieces ---------------------------------------------------------------------------------


def _line(text: str, ok: bool | None = None) -> str:
    mark = {True: "✓ ", False: "✗ ", None: ""}[ok]
    color = {True: "#1a7f37", False: "#cf222e", None: "inherit"}[ok]
    return f"<p style='color:{color}'>{esc(mark + text)}</p>"


def _error_text(error: BaseException) -> str:
    """The first line of an SDK error, which is the part that says what went wrong."""
    message = getattr(error, "message", None) or str(error) or error.__class__.__name__
    first = str(message).strip().splitlines()[0]
    status = getattr(error, "status_code", None)
    return f"{status}: {first}" if status else first


class KitWidget(w.VBox):
    """A VBox with a one-line text form for saved notebooks and static exports.

    Made for the keyboard and screen readers (tests/browser/test_accessibility.py): every
    control has a description, which ipywidgets renders as its label; buttons say what they do
    in words and carry no icon (an icon's glyph is read out as part of the button's name); the
    controls come in the order they are read, which is the order Tab visits them.
    """

    summary = "widget"
    result: w.HTML

    def __repr__(self) -> str:
        return f"{self.summary} (interactive: run the notebook to use it)"

    def on_click(self, button: w.Button, method: Any, shown_in: w.HTML | None = None) -> None:
        """Run ``method`` on click; an unexpected error is shown in the widget, because
        ipywidgets would only log it where a learner never looks."""

        def run(_: w.Button) -> None:
            try:
                method()
            except Exception as e:  # shown, not swallowed
                target_html = shown_in or self.result
                target_html.value = _line(f"{e.__class__.__name__}: {_error_text(e)}", False)

        button.on_click(run)


# -- token inspector -------------------------------------------------------------------------------


class TokenInspector(KitWidget):
    summary = "token inspector"

    def __init__(self, credential: Any, scope: str = ACS_SCOPE) -> None:
        self.credential = credential
        self.claims: dict[str, Any] | None = None
        self.scope = w.Text(
            value=scope, description="scope", placeholder="", layout=w.Layout(width="60%")
        )
        self.button = w.Button(description="Get token", tooltip="Ask the credential for a token")
        self.result = w.HTML()
        self.on_click(self.button, self.fetch)
        super().__init__([w.HBox([self.scope, self.button]), self.result])

    def fetch(self) -> dict[str, Any] | None:
        """Ask the credential for a token for the scope and show its claims (or the error)."""
        try:
            token = self.credential.get_token(self.scope.value.strip())
        except Exception as e:  # any SDK failure is the thing to show
            self.claims = None
            self.result.value = _line(f"no token: {_error_text(e)}", False)
            return None
        self.claims, view = token_view(token)
        self.result.value = view.html
        return self.claims


def token_inspector(credential: Any, scope: str = ACS_SCOPE) -> TokenInspector:
    """Get a token from ``credential`` for a scope you can edit, and show its claims."""
    return TokenInspector(credential, scope)


# -- credential chain explorer ---------------------------------------------------------------------

# DefaultAzureCredential's keyword that leaves out each credential it may try.
EXCLUDE = {
    "EnvironmentCredential": "exclude_environment_credential",
    "WorkloadIdentityCredential": "exclude_workload_identity_credential",
    "ManagedIdentityCredential": "exclude_managed_identity_credential",
    "SharedTokenCacheCredential": "exclude_shared_token_cache_credential",
    "VisualStudioCodeCredential": "exclude_visual_studio_code_credential",
    "AzureCliCredential": "exclude_cli_credential",
    "AzurePowerShellCredential": "exclude_powershell_credential",
    "AzureDeveloperCliCredential": "exclude_developer_cli_credential",
    "BrokerCredential": "exclude_broker_credential",
    "InteractiveBrowserCredential": "exclude_interactive_browser_credential",
}
_ACQUIRED = re.compile(r"acquired a token from (\w+)")


def credential_name(credential: Any) -> str:
    return getattr(credential, "_credential_name", None) or credential.__class__.__name__


def attempts_from_error(message: str) -> dict[str, str]:
    """``{credential: why}`` from DefaultAzureCredential's "Attempted credentials" message."""
    found: dict[str, str] = {}
    _, _, tail = message.partition("Attempted credentials:")
    for line in tail.splitlines():
        if not line.startswith("\t"):
            continue
        name, _, why = line.strip().partition(": ")
        found[name] = why.split(" Visit https://", 1)[0].strip()
    return found


class _Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class CredentialChainExplorer(KitWidget):
    summary = "credential chain explorer"

    def __init__(self) -> None:
        kit = target.current()
        on_sandbox = kit.target == target.SANDBOX
        options = list(personas(kit)) if on_sandbox else ["(you, on this machine)"]
        start = kit.persona if on_sandbox and kit.persona in options else options[0]
        self.persona = w.Dropdown(options=options, value=start, description="run as")
        self.persona.disabled = not on_sandbox
        self.scope = w.Text(
            value=ACS_SCOPE, description="scope", placeholder="", layout=w.Layout(width="60%")
        )
        self.button = w.Button(
            description="Ask DefaultAzureCredential",
            tooltip="Run the chain as the chosen persona",
        )
        self.button.layout.width = "auto"
        self.result = w.HTML()
        self.outcome: dict[str, Any] | None = None
        self.on_click(self.button, self.explore)
        super().__init__([w.HBox([self.persona, self.button]), self.scope, self.result])

    def _build(self, **excludes: bool) -> Any:
        from azure.identity import DefaultAzureCredential

        # The kit's cloud: on the sandbox or a private cloud the authority is not a Microsoft
        # cloud, so instance discovery is off and a service principal's request stays there.
        return DefaultAzureCredential(**target.credential_kwargs(), **excludes)

    def _run(self, scope: str, **excludes: bool) -> tuple[list[str], str | None, dict[str, str]]:
        """(chain order, credential that answered, {credential: why it did not})."""
        from azure.core.exceptions import ClientAuthenticationError

        credential = self._build(**excludes)
        names = [credential_name(c) for c in credential.credentials]
        handler = _Captured()
        logger = logging.getLogger("azure.identity")
        old_level = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            credential.get_token(scope)
        except ClientAuthenticationError as e:
            return names, None, attempts_from_error(str(e))
        finally:
            logger.removeHandler(handler)
            logger.setLevel(old_level)
            credential.close()
        winners = [m.group(1) for m in map(_ACQUIRED.search, handler.messages) if m]
        answered = winners[-1] if winners else None
        if answered is None:  # logging configured away: fall back to what the chain kept
            answered = credential_name(getattr(credential, "_successful_credential", None))
        return names, answered, {}

    def explore(self) -> dict[str, Any]:
        """Run DefaultAzureCredential as the chosen persona and show who answered, and why
        each credential before it could not (a second run that leaves out the one that
        answered and those after it, so the chain reports its reasons)."""
        persona = self.persona.value if not self.persona.disabled else None
        scope = self.scope.value.strip()
        with target.acting_as(persona):
            names, answered, why = self._run(scope)
            if answered in names and names.index(answered) > 0:
                later = names[names.index(answered) :]
                skip = {EXCLUDE[n]: True for n in later if n in EXCLUDE}
                _, _, why = self._run(scope, **skip)
        rows = []
        for name in names:
            if name == answered:
                rows.append((name, "✓ answered", "its token is the one your client uses"))
            elif name in why:
                rows.append((name, "✗ did not answer", why[name]))
            else:
                rows.append((name, "– not tried", "the chain stops at the first that answers"))
        who = f"as {persona}" if persona else "as you"
        head = (
            f"DefaultAzureCredential {who}: token from {answered}"
            if answered
            else f"DefaultAzureCredential {who}: no credential answered"
        )
        self.outcome = {"persona": persona, "answered": answered, "chain": rows}
        view = table(("credential", "result", "why"), rows)
        self.result.value = _line(head, bool(answered)) + view.html
        return self.outcome


def credential_chain_explorer() -> CredentialChainExplorer:
    """Pick a persona, run DefaultAzureCredential, see which credential answered and why not
    the others."""
    return CredentialChainExplorer()


# -- role switch -----------------------------------------------------------------------------------


class RoleSwitch(KitWidget):
    summary = "role switch"

    def __init__(
        self,
        principal_id: str,
        *,
        credential: Any = None,
        run_as: str | None = None,
        role: str = "Contributor",
        admin_credential: Any = None,
    ) -> None:
        kit = target.current()
        self.kit = kit
        self.principal_id = principal_id
        self.credential = credential
        self.run_as = run_as
        self.role = role
        self.admin_credential = admin_credential
        # Radio buttons, not toggle buttons: a screen reader says which one is chosen (a
        # toggle button's state is only its colour), and arrow keys move the choice.
        self.granted = w.RadioButtons(
            options=[("no role", False), (f"{role} on {kit.acs_name}", True)],
            value=False,
            description="role",
        )
        self.apply_button = w.Button(
            description="Apply", tooltip="Grant or remove the role as chosen"
        )
        self.try_button = w.Button(
            description="Try the call", tooltip="create_user() as the principal"
        )
        self.status = w.HTML()
        self.result = w.HTML()
        self.on_click(self.apply_button, self.apply, self.status)
        self.on_click(self.try_button, self.try_call)
        super().__init__(
            [w.HBox([self.granted, self.apply_button]), self.status, self.try_button, self.result]
        )

    # The management calls run as the developer (a person with Owner), whatever the kernel
    # currently acts as; the "try" call runs with the principal's own credential.
    def _authorization_client(self) -> Any:
        from azure.identity import AzureCliCredential
        from azure.mgmt.authorization import AuthorizationManagementClient

        admin = self.admin_credential or AzureCliCredential()
        return AuthorizationManagementClient(
            admin, self.kit.subscription_id, **target.helper_client_kwargs()
        )

    def _role_definition_id(self, client: Any) -> str:
        scope = self.kit.acs_resource_id
        found = list(client.role_definitions.list(scope, filter=f"roleName eq '{self.role}'"))
        if not found:
            raise ValueError(f"There is no role named '{self.role}' at {self.kit.acs_name}.")
        return found[0].id

    def _assignments(self, client: Any, definition_id: str) -> list[Any]:
        scope = self.kit.acs_resource_id.lower()
        guid = definition_id.rsplit("/", 1)[-1].lower()
        return [
            a
            for a in client.role_assignments.list_for_scope(
                self.kit.acs_resource_id, filter=f"principalId eq '{self.principal_id}'"
            )
            if a.scope.lower() == scope and a.role_definition_id.lower().endswith(guid)
        ]

    def refresh(self) -> bool:
        """Read the current assignment from Resource Manager into the toggle."""
        with target.acting_as("developer" if self.admin_credential is None else None):
            client = self._authorization_client()
            has = bool(self._assignments(client, self._role_definition_id(client)))
        self.granted.value = has
        return has

    def apply(self) -> bool:
        """Create or delete the role assignment so it matches the toggle; returns the state."""
        from azure.core.exceptions import HttpResponseError
        from azure.mgmt.authorization.models import RoleAssignmentCreateParameters

        want = bool(self.granted.value)
        try:
            with target.acting_as("developer" if self.admin_credential is None else None):
                client = self._authorization_client()
                definition = self._role_definition_id(client)
                current = self._assignments(client, definition)
                if want and not current:
                    client.role_assignments.create(
                        self.kit.acs_resource_id,
                        str(uuid.uuid4()),
                        RoleAssignmentCreateParameters(
                            role_definition_id=definition,
                            principal_id=self.principal_id,
                            principal_type="ServicePrincipal",
                        ),
                    )
                elif not want:
                    for a in current:
                        client.role_assignments.delete(self.kit.acs_resource_id, a.name)
        except (HttpResponseError, ValueError) as e:
            self.status.value = _line(f"could not change the role: {_error_text(e)}", False)
            return not want
        verb = "granted" if want else "removed"
        self.status.value = _line(f"{self.role} on {self.kit.acs_name} {verb}.", True)
        return want

    def try_call(self) -> bool:
        """``CommunicationIdentityClient.create_user()`` with the principal's credential, on the
        host it lives on (``run_as``) whatever the kernel acts as when the button is clicked."""
        from azure.communication.identity import CommunicationIdentityClient
        from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
        from azure.identity import DefaultAzureCredential

        try:
            with target.acting_as(self.run_as):
                credential = self.credential or DefaultAzureCredential()
                client = CommunicationIdentityClient(self.kit.acs_endpoint, credential)
                client.delete_user(client.create_user())  # nothing left behind
        except HttpResponseError as e:
            # ACS refuses a token without a role with 401 (a ClientAuthenticationError too): only
            # an error without a status comes from the credential itself.
            if isinstance(e, ClientAuthenticationError) and e.status_code is None:
                self.result.value = _line(f"no token: {_error_text(e)}", False)
            else:
                self.result.value = _line(f"refused ({_error_text(e)})", False)
            return False
        self.result.value = _line(
            "allowed: create_user() created a Communication Services user (deleted again).",
            True,
        )
        return True


def role_switch(
    principal_id: str,
    *,
    credential: Any = None,
    run_as: str | None = None,
    role: str = "Contributor",
    admin_credential: Any = None,
) -> RoleSwitch:
    """Grant or remove ``role`` on the ACS resource for ``principal_id`` (as the developer, with
    the authorization management SDK), then try ``create_user`` as that principal: with
    ``credential``, or with ``DefaultAzureCredential()`` on the host ``run_as`` names."""
    return RoleSwitch(
        principal_id,
        credential=credential,
        run_as=run_as,
        role=role,
        admin_credential=admin_credential,
    )


# -- identity explorer -----------------------------------------------------------------------------


class IdentityExplorer(KitWidget):
    summary = "identity explorer"

    SCOPES = ("chat", "voip", "chat.join", "chat.join.limited", "voip.join")

    def __init__(self, identity_client: Any) -> None:
        self.client = identity_client
        self.scopes = {
            s: w.Checkbox(value=s == "chat", description=s, indent=False) for s in self.SCOPES
        }
        # A number field, not a slider: its label names it for a screen reader (ipywidgets'
        # slider handle has none), and it takes typed values and the arrow keys alike.
        self.expiry = w.BoundedIntText(
            value=1440, min=60, max=1440, step=30, description="expires in (min)"
        )
        self.expiry.style.description_width = "initial"
        self.button = w.Button(
            description="Create user and token",
            tooltip="create_user_and_token() with these scopes and lifetime",
        )
        self.button.layout.width = "auto"
        self.result = w.HTML()
        self.issued: dict[str, Any] | None = None
        self.on_click(self.button, self.issue)
        super().__init__(
            [w.HBox(list(self.scopes.values())), self.expiry, self.button, self.result]
        )

    def issue(self) -> dict[str, Any] | None:
        """``create_user_and_token(scopes, token_expires_in=...)``; shows the redacted claims."""
        from azure.core.exceptions import HttpResponseError

        chosen = [s for s, box in self.scopes.items() if box.value]
        if not chosen:
            self.result.value = _line("Pick at least one scope.", False)
            return None
        try:
            user, token = self.client.create_user_and_token(
                scopes=chosen, token_expires_in=timedelta(minutes=int(self.expiry.value))
            )
        except HttpResponseError as e:
            self.result.value = _line(f"refused ({_error_text(e)})", False)
            return None
        claims, view = token_view(token)
        epoch = float(claims["exp"])  # the SDK's expires_on type varies; the claim does not
        head = (
            f"user {user.properties['id']}, token for {', '.join(chosen)}, "
            f"expires {utc(epoch)} ({countdown(epoch)})"
        )
        self.issued = {"user_id": user.properties["id"], "scopes": chosen, "claims": claims}
        self.result.value = _line(head, True) + view.html + _line(self._delete(user))
        return self.issued

    def _delete(self, user: Any) -> str:
        """Delete the user just made: the token is shown as claims only, so nothing needs it,
        and Communication Services cannot list users for a later clean-up to find. If the
        delete fails, the id is recorded for notebook 7."""
        from azure.core.exceptions import HttpResponseError

        from helpers import leftovers

        try:
            self.client.delete_user(user)
        except HttpResponseError as e:
            leftovers.record_users(target.current(), user.properties["id"])
            return f"Could not delete the user ({_error_text(e)}): recorded for notebook 7."
        return "The user is deleted again, and its token with it: the explorer keeps nothing."


def identity_explorer(identity_client: Any) -> IdentityExplorer:
    """Create ACS users and tokens with chosen scopes and lifetime; see the token's claims."""
    return IdentityExplorer(identity_client)


# -- SMS composer ----------------------------------------------------------------------------------


class SmsComposer(KitWidget):
    summary = "SMS composer"

    def __init__(self, sms_client: Any, kit: target.Kit) -> None:
        self.client = sms_client
        self.kit = kit
        senders = kit.status.get("sender_numbers") or [kit.sender]
        self.sender = w.Dropdown(options=list(senders), value=kit.sender, description="from")
        self.to = w.Combobox(options=list(kit.phones), value=kit.phone, description="to")
        self.message = w.Textarea(
            value="Hello from a managed identity!", description="message", placeholder=""
        )
        self.report = w.Checkbox(value=True, description="delivery report")
        # On Azure each click is a real, billed message: the button says so, and clicking it
        # is the learner's answer (a widget callback cannot wait for input()).
        billed = kit.target != target.SANDBOX
        self.button = w.Button(
            description="Send (billed SMS)" if billed else "Send", tooltip="SmsClient.send()"
        )
        self.result = w.HTML()
        self.sent: list[Any] = []
        self.on_click(self.button, self.send)
        super().__init__(
            [w.HBox([self.sender, self.to]), self.message, self.report, self.button, self.result]
        )

    def send(self) -> list[Any]:
        """``SmsClient.send`` with the form's values; shows each recipient's result and, on the
        sandbox, the phone's inbox."""
        from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

        to = self.to.value.strip()
        try:
            results = self.client.send(
                from_=self.sender.value,
                to=[to],
                message=self.message.value,
                enable_delivery_report=bool(self.report.value),
                tag="sms-composer",
            )
        except (HttpResponseError, ClientAuthenticationError) as e:
            self.result.value = _line(f"not sent ({_error_text(e)})", False)
            return []
        self.sent = list(results)
        rows = [
            (r.to, "✓ accepted" if r.successful else "✗ refused", r.http_status_code,
             r.error_message or "")
            for r in self.sent
        ]  # fmt: skip
        parts = [table(("to", "result", "HTTP status", "error"), rows).html]
        if self.kit.target == target.SANDBOX:
            _, view = inbox_view(self.kit.sandbox, to)
            parts.append(view.html)
        else:
            parts.append(_line("Look at the phone: the message arrives within seconds."))
        self.result.value = "".join(parts)
        return self.sent


def sms_composer(sms_client: Any, kit: target.Kit) -> SmsComposer:
    """Compose and send an SMS with ``sms_client``; see the result and the phone's inbox."""
    return SmsComposer(sms_client, kit)


__all__ = [
    "Rich",
    "credential_chain_explorer",
    "identity_explorer",
    "role_switch",
    "sms_composer",
    "token_inspector",
]
