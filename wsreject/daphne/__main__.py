"""``python -m wsreject.daphne``: see :mod:`wsreject.daphne.cli`."""

from wsreject.daphne.cli import main

if __name__ == "__main__":
    main()
