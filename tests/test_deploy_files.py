"""Binder (repo2docker), JupyterHub and dev-container files: they parse, point at files that
exist, and their start hooks really start a per-user sandbox and then run the given command."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sandbox import client
from sandbox.config import Settings
from tests.conftest import REPO

START = REPO / "binder" / "start"
POST_BUILD = REPO / "binder" / "postBuild"
DOCKERFILE = REPO / "deploy" / "jupyterhub" / "Dockerfile"
HUB_CONFIG = REPO / "deploy" / "jupyterhub" / "config.yaml"
DEVCONTAINER = REPO / ".devcontainer" / "devcontainer.json"
VENV_BIN = str(Path(sys.executable).parent)


def _clean_env(home: Path, **extra: str) -> dict[str, str]:
    """A learner's environment: their own HOME, the kit's Python first on PATH, and none of
    the test session's sandbox settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SANDBOX_") and k not in ("XDG_STATE_HOME", "KIT_WORKSPACE")
    }
    env.update(HOME=str(home), PATH=VENV_BIN + os.pathsep + env.get("PATH", ""), **extra)
    return env


def _env_lines(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


@pytest.fixture
def homes(tmp_path):
    """Make learners' home folders; stop every sandbox started in them afterwards."""
    made: list[Path] = []

    def make(name: str = "learner") -> Path:
        home = tmp_path / name
        home.mkdir()
        made.append(home)
        return home

    yield make
    for home in made:
        client.stop(Settings(state_dir=home / ".local" / "state" / "acs-mi-sandbox"))


def _status(env: dict[str, str]) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _run(cmd: list[str], env: dict[str, str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=90, **kw)


# -- binder/start: the one start hook ----------------------------------------------------------


def test_start_hook_starts_a_sandbox_in_home_then_runs_the_command(homes):
    home = homes()
    env = _clean_env(home)
    result = _run([str(START), "env"], env)
    assert result.returncode == 0, result.stderr
    seen = _env_lines(result.stdout)  # the command ran, with the hook's environment
    state = home / ".local" / "state" / "acs-mi-sandbox"
    assert seen["SANDBOX_STATE_DIR"] == str(state)
    assert seen["SANDBOX_HTTPS_PORT"] == "0" and seen["SANDBOX_MI_PORT"] == "0"
    instance = json.loads((state / "instance.json").read_text())
    status = _status(env)
    assert status["pid"] == instance["pid"]
    assert status["state_dir"] == str(state)
    # free ports, not the defaults a neighbour may hold
    assert not status["https_url"].endswith(":48443")
    # keys were made here, at start, private to this user
    assert (state / "signing-key.pem").stat().st_mode & 0o077 == 0


def test_start_hook_keeps_the_commands_arguments_and_exit_code(homes):
    env = _clean_env(homes())
    result = _run([str(START), "sh", "-c", 'printf "%s|" "$@"; exit 7', "sh", "a b", "c"], env)
    assert result.returncode == 7
    assert result.stdout == "a b|c|"


def test_start_hook_reuses_the_running_sandbox(homes):
    env = _clean_env(homes())
    assert _run([str(START), "true"], env).returncode == 0
    first = _status(env)["pid"]
    assert _run([str(START), "true"], env).returncode == 0
    assert _status(env)["pid"] == first


def test_two_learners_on_one_host_get_separate_sandboxes(homes):
    """A one-VM JupyterHub: users share the loopback interface but not state or ports."""
    env_a, env_b = _clean_env(homes("ada")), _clean_env(homes("bob"))
    starts = [
        subprocess.Popen([str(START), "true"], env=e, stderr=subprocess.PIPE)
        for e in (env_a, env_b)
    ]
    for p in starts:
        p.communicate(timeout=90)
        assert p.returncode == 0
    a, b = _status(env_a), _status(env_b)
    assert a["pid"] != b["pid"]
    assert a["state_dir"] != b["state_dir"]
    assert {a["https_url"], a["mi_url"]}.isdisjoint({b["https_url"], b["mi_url"]})
    secret = "control-secret"
    assert (Path(a["state_dir"]) / secret).read_text() != (
        Path(b["state_dir"]) / secret
    ).read_text()


def test_a_sandbox_that_cannot_start_does_not_keep_the_server_down(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    env = _clean_env(tmp_path, SANDBOX_STATE_DIR=str(blocker / "state"))
    result = _run([str(START), "sh", "-c", "echo server-started"], env)
    assert result.returncode == 0
    assert result.stdout.strip() == "server-started"
    assert "WARNING: the sandbox did not start" in result.stderr
    assert "python -m helpers.doctor" in result.stderr


def test_start_hook_copies_the_notebooks_into_a_workspace_once(homes):
    home = homes()
    env = _clean_env(home, KIT_WORKSPACE="kit")  # relative: inside home
    assert _run([str(START), "true"], env).returncode == 0
    copied = home / "kit" / "notebooks"
    names = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
    assert names and sorted(p.name for p in copied.glob("*.ipynb")) == names
    learner_work = copied / names[0]
    learner_work.write_text("the learner's edits")
    assert _run([str(START), "true"], env).returncode == 0
    assert learner_work.read_text() == "the learner's edits"


# -- binder/: repo2docker conventions ----------------------------------------------------------


def test_binder_files_follow_repo2docker_conventions():
    for script in (START, POST_BUILD):
        assert os.access(script, os.X_OK), f"{script} must be executable"
        assert script.read_text().startswith("#!/usr/bin/env bash\n")
    code = [ln.strip() for ln in START.read_text().splitlines() if ln.strip() and ln[0] != "#"]
    assert code[-1] == 'exec "$@"'
    env = yaml.safe_load((REPO / "binder" / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "pip" in deps and any(str(d).startswith("python=3.11") for d in deps)
    # the root environment.yml stays valid for conda users
    root = yaml.safe_load((REPO / "environment.yml").read_text())
    assert root["name"] and root["dependencies"]


def test_post_build_installs_the_locked_kit_and_its_jupyter_settings_and_ships_no_state(
    tmp_path,
):
    """Run postBuild as repo2docker does (from the repository root) with a recording python
    whose environment lives in ``prefix``."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    calls = tmp_path / "calls"
    prefix = tmp_path / "prefix"
    prefix.mkdir()
    (fake_bin / "python").write_text(
        f'#!/bin/sh\necho "$@" >> "{calls}"\n[ "$1" = -c ] && echo "{prefix}"\nexit 0\n'
    )
    (fake_bin / "python").chmod(0o755)
    checkout = tmp_path / "repo"
    shutil.copytree(REPO / "jupyter-config", checkout / "jupyter-config")
    (checkout / ".sandbox-state").mkdir(parents=True)
    (checkout / ".sandbox-state" / "signing-key.pem").write_text("key")
    (checkout / ".env").write_text("AZURE_CLIENT_SECRET=x")
    home = tmp_path / "home"
    home.mkdir()
    env = _clean_env(home)
    env["PATH"] = f"{fake_bin}{os.pathsep}{env['PATH']}"

    result = _run([str(POST_BUILD)], env, cwd=checkout)
    assert result.returncode == 0, result.stderr
    install, _prefix_query = calls.read_text().splitlines()
    # every package at the lock's version; no test extras
    assert install.split() == [
        "-m", "pip", "install", "--no-cache-dir", "-c", "requirements-lock.txt", "-e", ".",
    ]  # fmt: skip
    for settings in (REPO / "jupyter-config").glob("*/**/*.json"):
        rel = settings.relative_to(REPO / "jupyter-config")
        assert (prefix / rel).read_text() == settings.read_text(), rel
    assert not (checkout / ".env").exists()
    assert not (checkout / ".sandbox-state").exists()

    (home / ".local" / "state" / "acs-mi-sandbox").mkdir(parents=True)  # a step started one
    result = _run([str(POST_BUILD)], env, cwd=checkout)
    assert result.returncode != 0
    assert "keys must be made per container" in " ".join(result.stderr.split())


# -- deploy/jupyterhub: the image and the Helm values -------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _image_path_of(path_in_image: str, steps: list[tuple[str, str]]) -> Path:
    """The repository file that ends up at ``path_in_image`` (COPY . . into the WORKDIR)."""
    workdir = root = None
    for word, args in steps:
        if word == "WORKDIR":
            workdir = args
        if word == "COPY" and args.split() == [".", "."]:
            root = workdir
    assert root and path_in_image.startswith(root + "/")
    return REPO / path_in_image[len(root) + 1 :]


def test_dockerfile_parses_and_copies_only_what_exists():
    steps = _dockerfile()
    known = {"FROM", "ARG", "RUN", "ENV", "WORKDIR", "COPY", "USER", "EXPOSE", "ENTRYPOINT", "CMD"}
    assert {w for w, _ in steps} <= known
    assert next(w for w, _ in steps if w != "ARG") == "FROM"
    assert dict(steps)["FROM"].startswith("python:3.11")
    for word, args in steps:
        if word == "COPY":
            *sources, _dest = args.split()
            for src in sources:
                assert (REPO / src).exists(), f"COPY {src}: no such path in the repository"
    for word in ("ENTRYPOINT", "CMD"):
        assert isinstance(json.loads(dict(steps)[word]), list)  # exec form: signals reach tini
    user = [a for w, a in steps if w == "USER"][-1]
    assert user not in ("root", "0")
    cmd = json.loads(dict(steps)["CMD"])
    assert _image_path_of(cmd[0], steps) == START


def test_dockerignore_keeps_secrets_and_state_out_of_images():
    ignored = {ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()}
    assert {".env", ".venv", ".sandbox-state"} <= ignored


def test_hub_config_runs_the_start_hook_from_the_image():
    config = yaml.safe_load(HUB_CONFIG.read_text())
    single = config["singleuser"]
    steps = _dockerfile()
    assert single["cmd"][1:] == ["jupyterhub-singleuser"]
    assert _image_path_of(single["cmd"][0], steps) == START
    env = single["extraEnv"]
    assert all(isinstance(v, str) for v in env.values()), "Kubernetes wants string env values"
    image_env = " ".join(a for w, a in steps if w == "ENV")
    assert f"KIT_WORKSPACE={env['KIT_WORKSPACE']}" in image_env
    assert single["storage"]["homeMountPath"] == "/home/jovyan"
    assert env["KIT_WORKSPACE"].startswith(single["storage"]["homeMountPath"] + "/")
    # defaultUrl opens a notebook the workspace copy will hold
    url = single["defaultUrl"]
    workspace_rel = env["KIT_WORKSPACE"][len("/home/jovyan/") :]
    assert url.startswith(f"/lab/tree/{workspace_rel}/")
    assert (REPO / url[len(f"/lab/tree/{workspace_rel}/") :]).is_file()
    # nothing secret is written in the values file
    text = HUB_CONFIG.read_text()
    assert not re.search(r"(?im)^\s*(password|client_secret|secretToken|cookieSecret):\s*\S", text)


def test_hub_config_start_command_brings_up_the_learners_sandbox(homes):
    """Run the pod's command as KubeSpawner would, with the Hub's server swapped for `env`."""
    home = homes()
    single = yaml.safe_load(HUB_CONFIG.read_text())["singleuser"]
    extra = {
        k: v.replace(single["storage"]["homeMountPath"], str(home))
        for k, v in single["extraEnv"].items()
    }
    hook = _image_path_of(single["cmd"][0], _dockerfile())
    result = _run([str(hook), "env"], _clean_env(home, **extra))
    assert result.returncode == 0, result.stderr
    seen = _env_lines(result.stdout)
    assert Path(seen["SANDBOX_STATE_DIR"]).is_relative_to(home)
    assert (Path(seen["SANDBOX_STATE_DIR"]) / "instance.json").is_file()
    assert _status(_clean_env(home))["state_dir"] == seen["SANDBOX_STATE_DIR"]
    assert (home / "acs-mi-kit" / "notebooks" / "00-welcome.ipynb").is_file()


# -- .devcontainer ------------------------------------------------------------------------------


def _devcontainer() -> dict:
    return json.loads(DEVCONTAINER.read_text())


def _script_of(command: str) -> Path:
    words = command.split()
    assert words[0] == "bash" and len(words) == 2, command
    return REPO / words[1]


def test_devcontainer_parses_and_points_at_its_scripts():
    config = _devcontainer()
    assert "3.11" in config["image"]
    for key in ("postCreateCommand", "postAttachCommand"):
        script = _script_of(config[key])
        assert script.is_file() and os.access(script, os.X_OK), script
    assert config["otherPortsAttributes"]["onAutoForward"] == "ignore"  # sandbox ports stay local


def test_devcontainer_create_script_runs_the_readme_setup(tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    calls = tmp_path / "calls"
    (fake_bin / "make").write_text(f'#!/bin/sh\necho "$(pwd) $@" >> "{calls}"\n')
    (fake_bin / "make").chmod(0o755)
    env = _clean_env(tmp_path)
    env["PATH"] = f"{fake_bin}{os.pathsep}{env['PATH']}"
    result = _run(["bash", str(_script_of(_devcontainer()["postCreateCommand"]))], env)
    assert result.returncode == 0, result.stderr
    assert calls.read_text().split() == [str(REPO), "setup"]
    assert re.search(r"(?m)^setup:", (REPO / "Makefile").read_text())


def test_devcontainer_attach_script_starts_the_sandbox(homes):
    home = homes()
    env = _clean_env(home)
    script = _script_of(_devcontainer()["postAttachCommand"])
    result = _run(["bash", str(script)], env)
    assert result.returncode == 0, result.stderr
    assert "sandbox running" in result.stdout  # its command, `sandbox status`, ran
    state = home / ".local" / "state" / "acs-mi-sandbox"
    assert (state / "instance.json").is_file()
    assert _status(env)["state_dir"] == str(state)


# -- README and docs -----------------------------------------------------------------------------


def test_readme_has_a_binder_badge_and_points_at_the_workshop_docs():
    readme = (REPO / "README.md").read_text()
    badge = re.search(
        r"\[!\[[^\]]*\]\(https://mybinder\.org/badge_logo\.svg\)\]"
        r"\((https://mybinder\.org/v2/gh/[^)\s]+)\)",
        readme,
    )
    assert badge, "no Binder launch badge"
    urlpath = re.search(r"urlpath=lab/tree/([^&)\s]+)", badge.group(1))
    assert urlpath and (REPO / urlpath.group(1)).is_file()
    for doc in ("docs/facilitator-guide.md", "docs/cheat-sheet.md"):
        assert f"({doc})" in readme and (REPO / doc).is_file()


def test_facilitator_guide_times_every_notebook():
    guide = (REPO / "docs" / "facilitator-guide.md").read_text()
    for nb in (REPO / "notebooks").glob("*.ipynb"):
        assert re.search(rf"`{re.escape(nb.stem)}`[^\n]*\|\s*\d+ min", guide), nb.stem
    for must in ("python -m helpers.doctor", "python -m sandbox reset", "SANDBOX_HTTPS_PORT=0"):
        assert must in guide
    assert "Microsoft Entra ID" in guide
    for doc in (guide, (REPO / "docs" / "cheat-sheet.md").read_text()):
        assert not re.search(r"Azure (AD|Active Directory)", doc)  # the old names


def test_hub_image_gets_the_kits_jupyter_settings():
    """As make setup and postBuild do: the image's environment holds jupyter-config/."""
    steps = _dockerfile()
    copy_all = steps.index(("COPY", ". ."))
    [settings] = [i for i, (w, a) in enumerate(steps) if "jupyter-config/etc" in a]
    assert steps[settings][0] == "RUN" and settings > copy_all
    assert "cp -R jupyter-config/etc jupyter-config/share" in steps[settings][1]
