"""Command-line entry point of the fake upstream: ``python -m trimesh.testing.upstream --help``.

The implementation and its documentation are in :mod:`trimesh.testing._upstream`.
"""

from ._upstream import main

if __name__ == "__main__":
    main()
