"""Fictional demo corpus for mipo-local: the notes and email of "Ada Lindqvist".

Ada is invented; see README.md in this folder for what is here and for a list
of probe facts that only her own writing contains.
"""

import pathlib

# Ada's own addresses: her emails are her writing
DEMO_ADDRESSES = ("ada@lindqvist.example", "ada.lindqvist@fjordlab.example")


def demo_dir() -> pathlib.Path:
    """Return the folder that holds the demo corpus (this package's folder)."""
    return pathlib.Path(__file__).resolve().parent


def demo_sources() -> list[pathlib.Path]:
    """What to import for the demo: Ada's notes and her mail (not this package's README)."""
    return [demo_dir() / "notes", demo_dir() / "mail"]
