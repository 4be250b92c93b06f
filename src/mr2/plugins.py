"""The user's own models, datasets and losses, registered from their code for the CLI.

A module that calls ``mr2.models.register``, ``mr2.data.register`` or
``mr2.losses.register`` when imported is loaded by ``mr2 --import MODULE ...`` (a dotted
module name; the current folder is searched first, as ``python -m`` does), or by every mr2
command when an installed package declares it as an entry point::

    [project.entry-points."mr2.plugins"]
    my_models = "my_pkg.models"

The modules named with ``--import`` are recorded in ``MR2_IMPORT``, so the processes a
comparison starts (pool workers, torchrun ranks, a local Ray) import them too; on a remote
cluster install the package with its entry point instead.
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib.metadata import entry_points

ENV = "MR2_IMPORT"
GROUP = "mr2.plugins"


def load(modules: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Import ``modules``, those already named in ``MR2_IMPORT`` and every ``mr2.plugins``
    entry point; record the names in ``MR2_IMPORT``. Returns the modules imported."""
    named = [m for m in os.environ.get(ENV, "").split(",") if m]
    named += [m for m in modules if m not in named]
    if named:
        os.environ[ENV] = ",".join(named)
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
    for name in named:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ImportError(f"--import {name}: {err} (a module on the Python path)") from err
    for point in entry_points(group=GROUP):
        point.load()
    return named
