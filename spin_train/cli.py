"""``spin-train``: the user-facing commands of spin_train (SPIN stage 1 and stage 2).

The commands (``pretrain``, ``policy``, ``probe``, ``compare``) arrive with their issues; the
group exists now so the console script, ``--help`` and the package layout are in place.
"""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="spin")
def main() -> None:
    """spin-train: SPIN's Action Structure Model pre-training and policy training on spin
    datasets (Zarr stores written by spin-data)."""


if __name__ == "__main__":  # pragma: no cover
    main()
