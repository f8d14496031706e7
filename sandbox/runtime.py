"""What every route needs at run time: the one running sandbox, and how a request finds it.

Its own module, below the route modules and the app that assembles them, so that imports only
point downward: ``app.py`` imports the routes, and the routes import this.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from sandbox.config import Settings
from sandbox.entra.tokens import TokenService
from sandbox.store import Store


@dataclass
class Sandbox:
    """Everything a route needs at run time; reachable as ``request.app.state.sandbox``."""

    settings: Settings
    store: Store
    tokens: TokenService
    https_url: str
    mi_url: str
    secret: str
    mi_secret: str = ""  # the identity endpoints' path segment (see managed_identity/routes.py)
    started_at: float = field(default_factory=time.time)
    # Scenario switches for lessons and tests (see sandbox/faults.py); not persisted.
    faults: dict[str, Any] = field(default_factory=dict)
    # Tokens the identity endpoints hand out again (see managed_identity/models.py).
    mi_token_cache: dict[Any, Any] = field(default_factory=dict)
    # The Function app sites' worker processes (see sandbox/functions/models.py).
    function_hosts: Any = field(default_factory=lambda: _function_hosts())
    # Run Command operations in flight (sandbox/arm/run_command.py); finished ones are stored.
    run_commands: Any = None
    _secrets_seen: tuple[int, tuple[str, ...]] = (-1, ())

    def known_secrets(self) -> tuple[str, ...]:
        """Every secret value of this installation (read again whenever the store changed:
        keys rotate), for the request log to mask."""
        version = self.store.version
        if self._secrets_seen[0] != version:
            from sandbox import world

            made = world.installation_secrets(self.store)
            acs = self.store.get("acs_resource", world.ACS_NAME) or {}
            values = [self.secret, self.mi_secret, made["developer_password"], made["sp_secret"]]
            values += made["acs_keys"].values()
            values += (acs.get("keys") or {}).values()
            values += made["identity_headers"].values()
            values += [h.get("identity_header") for h in self.store.list("host")]
            self._secrets_seen = (version, tuple(v for v in values if isinstance(v, str) and v))
        return self._secrets_seen[1]


def _function_hosts() -> Any:
    from sandbox.functions.models import FunctionHosts

    return FunctionHosts()


def sandbox_of(request: Request) -> Sandbox:
    return request.app.state.sandbox
