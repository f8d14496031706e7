import os
import sys

if sys.dont_write_bytecode and sys.pycache_prefix is None:
    # The environment turned bytecode writing off (to keep source folders clean): compile the
    # sandbox's modules once into the user's cache instead of on every command (see client.py).
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    sys.pycache_prefix = os.path.join(base, "acs-mi-sandbox", "pycache")
    sys.dont_write_bytecode = False

from sandbox.cli import main  # noqa: E402 - after the bytecode cache is chosen

raise SystemExit(main())
