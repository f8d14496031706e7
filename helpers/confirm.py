"""Asking before a step changes or bills something real, and saying when a step is skipped.

On the azure target a notebook acts on the learner's own subscription: deleting a role
assignment, turning an identity off, regenerating a key or sending an SMS that costs money.
``confirm`` asks first, with "no" as the default, so pressing Enter (or a kernel that cannot
ask at all) changes nothing; ``KIT_ASSUME_YES=1`` answers yes for unattended runs.

On the sandbox nothing real changes or bills, so ``confirm`` does not ask: the notebooks run
top to bottom without waiting, in a workshop and in the notebook tests alike.

``sandbox_only`` is the other half: a step that only makes sense on the sandbox (a fault, the
request log, a phone that replies STOP) says on Azure, in one sentence, that it was skipped
and why, instead of running as something it is not.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from helpers import target
from helpers.display import note, show

ASSUME_YES = "KIT_ASSUME_YES"
_YES = {"y", "yes"}


def _ask(prompt: str) -> str | None:
    """The learner's answer, or None when nobody can answer (no stdin, as in a batch run)."""
    try:
        return input(prompt)
    except (EOFError, RuntimeError, OSError):
        # ipykernel raises StdinNotImplementedError (a RuntimeError) when the frontend
        # cannot answer input requests, e.g. nbclient executing a notebook.
        return None


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def assume_yes(question: str) -> bool:
    """True when ``KIT_ASSUME_YES=1`` answers ``question`` for an unattended run (and says so)."""
    if os.environ.get(ASSUME_YES, "").strip() != "1":
        return False
    print(f"{question}? yes ({ASSUME_YES}=1)")
    return True


def confirm(question: str, *, ask: Callable[[str], str | None] = _ask) -> bool:
    """Ask ``question`` (a step phrased as an action: "Delete 2 role assignments") before it
    changes or bills something on Azure; True means go ahead.

    The default is no: only ``y`` or ``yes`` goes ahead. ``KIT_ASSUME_YES=1`` answers yes
    without asking. On the sandbox it answers yes without asking (nothing real changes). A
    declined step is named in one sentence, so the learner knows what did not happen.
    """
    question = question.strip().rstrip("?.")
    if target.current().target == target.SANDBOX:
        return True
    if assume_yes(question):
        return True
    answer = ask(f"{question} in your subscription? [y/N] ")
    if answer is not None and answer.strip().lower() in _YES:
        return True
    why = "nobody could answer here; set KIT_ASSUME_YES=1 to" if answer is None else "you did not"
    show(note(f"Skipped: {_lower_first(question)} ({why} answer yes); nothing was changed."))
    return False


def sandbox_only(step: str, why: str) -> bool:
    """True on the sandbox; on Azure, say in one sentence that ``step`` is skipped and ``why``.

    Use it as ``if helpers.sandbox_only("the clock fault", "Azure's clock cannot be moved"):``.
    """
    if target.current().target == target.SANDBOX:
        return True
    show(note(f"Skipped on Azure: {step}, because {why}."))
    return False
