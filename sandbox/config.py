"""Where a sandbox keeps its state and which ports it listens on.

Every setting comes from the environment so that tests, workshops and JupyterHub users can run
several sandboxes side by side; the defaults suit one learner on one laptop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HTTPS_PORT = 48443
DEFAULT_MI_PORT = 48080


def default_state_dir() -> Path:
    """Per-user folder, like Jupyter's runtime dir: never shared between OS users."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(base) / "acs-mi-sandbox"


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    bind: str = "127.0.0.1"
    https_port: int = DEFAULT_HTTPS_PORT
    mi_port: int = DEFAULT_MI_PORT

    @classmethod
    def from_env(cls, state_dir: str | os.PathLike | None = None) -> Settings:
        folder = state_dir or os.environ.get("SANDBOX_STATE_DIR") or default_state_dir()
        return cls(
            state_dir=Path(folder).expanduser().resolve(),
            bind=os.environ.get("SANDBOX_BIND", "127.0.0.1"),
            https_port=int(os.environ.get("SANDBOX_HTTPS_PORT", DEFAULT_HTTPS_PORT)),
            mi_port=int(os.environ.get("SANDBOX_MI_PORT", DEFAULT_MI_PORT)),
        )

    # Files inside the state folder, named once here.
    @property
    def db_file(self) -> Path:
        return self.state_dir / "sandbox.sqlite3"

    @property
    def instance_file(self) -> Path:
        return self.state_dir / "instance.json"

    @property
    def secret_file(self) -> Path:
        return self.state_dir / "control-secret"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "sandbox.log"

    @property
    def azcli_dir(self) -> Path:
        """The sign-in kept by the sandbox's ``az`` (developer persona)."""
        return self.state_dir / "azure-cli"

    @property
    def ca_file(self) -> Path:
        return self.state_dir / "ca.pem"

    @property
    def bundle_file(self) -> Path:
        return self.state_dir / "ca-bundle.pem"

    def ensure_state_dir(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
