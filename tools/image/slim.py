"""Trim the image's virtualenv after install (run in the Dockerfile's builder stage).

What goes, and why (measured in docs/BENCHMARKS.md, "Image size"):

- ``kubernetes/aio``: the client's asyncio copy (66 MB with its .pyc), never
  imported: the server uses the synchronous client in its watch threads.
- test folders shipped inside packages (``websocket/tests``, ...): never imported.

Then bytecode: the root filesystem is read-only, so a module without a .pyc is
compiled again at every start. Everything gets a .pyc except the client's
lazily loaded ``kubernetes/client/api`` and ``kubernetes/client/models`` (900
generated modules, 23 MB of .pyc): of those, exactly the modules that the
server's imports load (its two API classes pull in 250 models) are compiled.
The .pyc files are "unchecked-hash": valid whatever the sources' timestamps
after the COPY.

    python -I slim.py SITE_PACKAGES
"""

from __future__ import annotations

import compileall
import importlib
import pkgutil
import py_compile
import re
import shutil
import sys
from pathlib import Path

NEVER_IMPORTED = ("kubernetes/aio",)
TEST_FOLDERS = ("tests", "test")
LAZY = re.compile(r"/kubernetes/client/(api|models)/")
# The API classes the server's sources name (``kubernetes.client.CoreV1Api``).
API_CLASS = re.compile(r"\bkubernetes\.client\.(\w+Api)\b")
MODE = py_compile.PycInvalidationMode.UNCHECKED_HASH


def import_the_server() -> None:
    """Import every module of the package and every API class its sources use."""
    import webhook

    package = Path(webhook.__file__).parent
    for info in pkgutil.walk_packages(webhook.__path__, "webhook."):
        if info.name != "webhook.__main__":  # runs the CLI
            importlib.import_module(info.name)
    client = importlib.import_module("kubernetes.client")
    for source in package.rglob("*.py"):
        for name in API_CLASS.findall(source.read_text(encoding="utf-8")):
            getattr(client, name)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    site = Path(argv[0])
    sys.dont_write_bytecode = True  # every .pyc below is written on purpose
    for relative in NEVER_IMPORTED:
        shutil.rmtree(site / relative)
    for package in site.iterdir():
        for name in TEST_FOLDERS:
            if (package / name).is_dir():
                shutil.rmtree(package / name)
    for stale in site.rglob("__pycache__"):
        shutil.rmtree(stale)
    ok = compileall.compile_dir(site, quiet=1, rx=LAZY, invalidation_mode=MODE, workers=0)
    import_the_server()
    for module in list(sys.modules.values()):
        source = getattr(module, "__file__", None) or ""
        if LAZY.search(source) and source.endswith(".py"):
            py_compile.compile(source, doraise=True, invalidation_mode=MODE)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
