"""The kit installed where every OS user of a machine can read it, for the tests that become
other users (test_multi_user.py, test_room.py).

The project's venv may not be usable by another user (its interpreter is a link into root's
home), so these installs use the system Python with the venv's packages, shared by hard links
(free) wherever the file is already world-readable.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = "/usr/bin/python3"
# What a learner's server needs of the repository (the rest is the developers').
KIT_PARTS = ("binder", "deploy", "helpers", "notebooks", "sandbox", "pyproject.toml")


def share_tree(src: Path, dst: Path) -> None:
    """Make ``src`` readable at ``dst`` by every user: hard links where the file already is
    world-readable (free), copies otherwise."""

    def link_or_copy(s: str, d: str) -> None:
        if os.stat(s).st_mode & stat.S_IROTH:
            try:
                os.link(s, d)
                return
            except OSError:  # another file system, or linking refused
                pass
        shutil.copy2(s, d)
        os.chmod(d, 0o755 if os.stat(s).st_mode & stat.S_IXUSR else 0o644)

    shutil.copytree(src, dst, copy_function=link_or_copy, symlinks=True, dirs_exist_ok=True)
    for folder, _, _ in os.walk(dst):
        os.chmod(folder, 0o755)


def check_system_python() -> None:
    """The shared packages hold compiled extensions: the system Python must be the venv's
    minor version."""
    wanted = f"{sys.version_info.major}.{sys.version_info.minor}"
    system = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert system == wanted, (
        f"{SYSTEM_PYTHON} is Python {system}, the project's venv {wanted}: the shared install "
        "needs the same minor version (compiled extensions)"
    )


def install_kit(kit: Path, scripts: tuple[str, ...] = ()) -> Path:
    """The kit at ``kit`` as a facilitator installs it on a shared machine (a clone and
    ``make setup`` in /opt/acs-mi-kit): its files, and ``kit/.venv`` with the project's
    packages and the kit itself importable, on the system Python. ``scripts`` are console
    scripts of the project's venv to provide there. Returns the venv's ``bin`` folder."""
    check_system_python()
    kit.mkdir(parents=True, exist_ok=True)
    os.chmod(kit, 0o755)
    for part in KIT_PARTS:
        if (REPO / part).is_dir():
            share_tree(REPO / part, kit / part)
        else:
            shutil.copy2(REPO / part, kit / part)
            os.chmod(kit / part, 0o644)
    venv = kit / ".venv"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = venv / "lib" / version / "site-packages"
    share_tree(Path(sysconfig.get_paths()["purelib"]), site)
    for editable in site.glob("__editable__*"):  # points into this repo: the copy replaces it
        editable.unlink()
    (site / "acs-mi-kit.pth").write_text(f"{kit}\n")
    bin_dir = venv / "bin"
    for name in scripts:
        body = (Path(sys.prefix) / "bin" / name).read_text().split("\n", 1)[1]
        (bin_dir / name).write_text(f"#!{bin_dir / 'python'}\n{body}")
        os.chmod(bin_dir / name, 0o755)
    for folder, _, _ in os.walk(venv):
        os.chmod(folder, 0o755)
    return bin_dir
