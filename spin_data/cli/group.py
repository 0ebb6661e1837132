"""The ``spin-data`` command group, on which every command module registers."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="spin")
def main() -> None:
    """spin-data: discretised control tasks and offline datasets as Zarr stores."""
    # dm_control's model compiler logs deprecation notices through absl; they are not for users.
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)
