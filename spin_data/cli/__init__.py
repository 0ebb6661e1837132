"""``spin-data``: the user-facing commands of spin_data (library code lives in the subpackages).

One module per command group: :mod:`.envs` (``envs``), :mod:`.dataset_tools` (the tools:
``info``, ``verify``, ``combine``, ``export``, ``card``, ``import``), :mod:`.datasets`
(``generate``, ``list``) and :mod:`.behaviour` (``train-behaviour``, ``ship-behaviour``). They
register on :func:`main` (:mod:`.group`), and share :mod:`.options` (options declared once) and
:mod:`.common` (error translation, the Ctrl-C hint).
"""

from spin_data.cli.group import main

# Importing the command modules registers their commands on main.
from spin_data.cli import behaviour, dataset_tools, datasets, envs  # noqa: E402, F401  isort: skip

__all__ = ["main"]
