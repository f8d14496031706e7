"""JupyterHub on one machine for its local OS users: every learner's server starts that
learner's own sandbox through the kit's start hook (``binder/start``), as Binder, the
Kubernetes image and the dev container do.

Why a config of its own: on one machine the users share one network namespace and one file
system, so the kit must run from a folder every user can read, with a Python environment every
user can run, and each server must start as its learner (the local-process spawner does that,
the hub itself runs as root). Everything else (where the hub listens, who may sign in) belongs
to the room and is set next to this file; see deploy/jupyterhub/README.md, "One machine, local
users". tests/test_room.py starts a real hub with this file for three local users.
"""

from pathlib import Path

c = get_config()  # noqa: F821 - JupyterHub defines get_config when it loads this file

# The kit's folder is the one this file is in (deploy/jupyterhub/ inside it), and its Python
# environment is the one `make setup` made there: it holds jupyterhub-singleuser, the kernel
# and the sandbox's packages.
KIT_DIR = Path(__file__).resolve().parents[2]
KIT_BIN = KIT_DIR / ".venv" / "bin"

c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"
# The hook starts the learner's sandbox (state in their home, free ports), then execs the
# single-user server with the hub's arguments.
c.Spawner.cmd = [str(KIT_DIR / "binder" / "start"), "jupyterhub-singleuser"]
c.Spawner.environment = {
    # The kit's environment first: `python` (the hook's sandbox), jupyterhub-singleuser, and
    # the kernel the notebooks run in, all from the same installation.
    "PATH": f"{KIT_BIN}:/usr/local/bin:/usr/bin:/bin",
    # Relative, so inside each learner's home: their own copy of the notebooks, made once.
    "KIT_WORKSPACE": "acs-mi-kit",
}
c.Spawner.default_url = "/lab/tree/acs-mi-kit/notebooks/00-welcome.ipynb"
# The hook starts the sandbox (about a second) before the server; a room of learners signing
# in at once on a small machine needs more than the default 30 s.
c.Spawner.http_timeout = 90
c.Spawner.start_timeout = 120
