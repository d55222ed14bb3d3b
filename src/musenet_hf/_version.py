"""The package's version, apart so that the ``musenet`` command's ``--version`` needs nothing else."""

__version__ = "0.1.0"
