"""The environment a notebook runs in when it is built or tested: clean and self-contained.

Nothing from the calling shell may steer a credential or the target (a stray
``AZURE_CLIENT_SECRET`` changes what ``DefaultAzureCredential`` does), the notebook gets a
sandbox of its own (a fresh state folder, free ports), and every Python process it starts
carries the loopback guard (tests/loopback_guard), so neither committed outputs nor test runs
can come from a call that left 127.0.0.1.
"""

from __future__ import annotations

import os
from pathlib import Path

from sandbox.personas import CREDENTIAL_VARIABLES

REPO = Path(__file__).resolve().parent.parent
GUARD = REPO / "tests" / "loopback_guard"  # its sitecustomize refuses non-loopback sockets


def notebook_env(state_dir: Path | str, guard_log: Path | str) -> dict[str, str]:
    drop = {*CREDENTIAL_VARIABLES, "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("SANDBOX_")}
    env.update(
        SANDBOX_STATE_DIR=str(state_dir),
        SANDBOX_HTTPS_PORT="0",
        SANDBOX_MI_PORT="0",
        KIT_TARGET="sandbox",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(GUARD), os.environ.get("PYTHONPATH")])),
        KIT_LOOPBACK_GUARD_LOG=str(guard_log),
    )
    return env
