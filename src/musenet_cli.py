"""The ``musenet`` command's entry point: arguments first, then the package.

``import musenet_hf`` registers the model with Transformers, which imports torch and transformers:
about 3.6 s on a 2-core CPU, before anything else. A command line with a mistake should not wait
for that (issue 34: ``musenet generate --seconds 0``). This module lives outside the package so
that it can set the package up without running its ``__init__``: it parses the arguments and runs
the subcommand's cheap check (:func:`musenet_hf.cli.check`) with only the modules those need, then
runs ``musenet_hf/__init__.py`` into the same module object, exactly as an import would have,
and then the command. ``python -m musenet_hf.cli`` does the same work in the usual order.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def _bare_package() -> tuple[ModuleType, object]:
    """The ``musenet_hf`` package object with its ``__init__`` not run yet (its submodules import),
    and the loader that runs it. An already imported package is returned as it is (loader None)."""
    if "musenet_hf" in sys.modules:
        return sys.modules["musenet_hf"], None
    spec = importlib.util.find_spec("musenet_hf")
    package = importlib.util.module_from_spec(spec)
    sys.modules["musenet_hf"] = package
    return package, spec.loader


def _forget_bare_package() -> None:
    """Drop the unfinished package and the submodules imported into it, so that a later ``import
    musenet_hf`` in this process starts afresh (the command stopped before the package's import ran)."""
    for name in [m for m in sys.modules if m == "musenet_hf" or m.startswith("musenet_hf.")]:
        del sys.modules[name]


def main(argv: list[str] | None = None) -> int:
    """Parse and check ``argv`` (``sys.argv[1:]``), finish importing the package, run the command."""
    package, loader = _bare_package()
    try:
        from musenet_hf import cli

        args = cli.parse(argv)
        code = cli.check(args)
    except BaseException:  # --help, argparse's own errors
        if loader is not None:
            _forget_bare_package()
        raise
    if code is not None:
        if loader is not None:
            _forget_bare_package()
        return code
    if loader is not None:
        loader.exec_module(package)  # the package's own import: the Hub switched off, the model registered
    return cli.run(args)


if __name__ == "__main__":
    sys.exit(main())
