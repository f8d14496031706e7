"""Where a sandbox keeps its state and which ports it listens on.

Every setting comes from the environment so that tests, workshops and JupyterHub users can run
several sandboxes side by side; the defaults suit one learner on one laptop.
"""

from __future__ import annotations

import os
import stat
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

    @property
    def lock_file(self) -> Path:
        """Held (flock) by the serving process for its whole life; names its pid."""
        return self.state_dir / "server.lock"

    def ensure_state_dir(self) -> None:
        """Create the folder private to its owner, or refuse one that another user could change.

        Like ssh with ``~/.ssh``: a folder owned by someone else, or writable by others, could
        have had a program planted in it (``bin/az`` runs as the developer persona) or its keys
        swapped, so nothing in it is trusted.
        """
        try:
            self.state_dir.mkdir(mode=0o700, parents=True)
        except FileExistsError:
            pass
        check_private_folder(self.state_dir)


class StateError(Exception):
    """The state folder cannot be used as it is; the message says what is wrong and the one
    command (or choice) that fixes it. Nothing is served while it stands."""


def check_private_folder(folder: Path) -> None:
    """Refuse a folder (or a link to one) not owned by this user or open to others' writes."""
    info = os.lstat(folder)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise StateError(f"The state folder {folder} is not a folder; remove it or choose "
                             "another with SANDBOX_STATE_DIR.")  # fmt: skip
    if info.st_uid != os.getuid():
        raise StateError(
            f"The state folder {folder} belongs to another user (uid {info.st_uid}), who could "
            "plant programs or keys in it; the sandbox will not use it. Choose a folder of your "
            "own with SANDBOX_STATE_DIR."
        )
    if info.st_mode & 0o022:
        raise StateError(
            f"The state folder {folder} is writable by other users (mode "
            f"{stat.S_IMODE(info.st_mode):o}); the sandbox will not use it. Make it private "
            f"with: chmod 700 {folder}"
        )
    if info.st_mode & 0o077:
        os.chmod(folder, 0o700)  # readable by others, but nobody else could change it: tighten
