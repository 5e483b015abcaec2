"""Fictional demo corpus for mipo-local: the notes and email of "Ada Lindqvist".

Ada is invented; see README.md in this folder for what is here and for a list
of probe facts that only her own writing contains.
"""

import pathlib


def demo_dir() -> pathlib.Path:
    """Return the folder that holds the demo corpus (this package's folder)."""
    return pathlib.Path(__file__).resolve().parent
