"""``python -m spin_data.cli``: the ``spin-data`` command."""

from spin_data.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
