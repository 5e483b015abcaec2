"""A file/folder picker: a directory tree from the home folder; Enter on a file or "Use" on a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Label, Static


class PathPicker(ModalScreen[Optional[Path]]):
    """Dismisses with the chosen path, or None."""

    BINDINGS = [("escape", "cancel", "Cancel")]

    def __init__(self, root: Optional[Path] = None) -> None:
        super().__init__()
        self.root = Path(root or Path.home())
        self.chosen: Optional[Path] = None

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Static("Pick a notes folder, an Obsidian vault, an mbox or .eml file, or a Maildir. "
                         "Enter opens a folder or picks a file; Use takes the highlighted one.", id="picker-title")
            yield DirectoryTree(self.root, id="picker-tree")
            yield Label("", id="picker-chosen")
            with Horizontal(classes="buttons"):
                yield Button("Use", id="picker-use", variant="primary")
                yield Button("Cancel", id="picker-cancel")

    def _choose(self, path: Path) -> None:
        self.chosen = path
        self.query_one("#picker-chosen", Label).update(str(path))

    @on(DirectoryTree.DirectorySelected)
    @on(DirectoryTree.FileSelected)
    def _selected(self, event: DirectoryTree.DirectorySelected | DirectoryTree.FileSelected) -> None:
        self._choose(event.path)

    @on(Button.Pressed, "#picker-use")
    def use(self) -> None:
        if self.chosen is None:
            node = self.query_one(DirectoryTree).cursor_node
            self.chosen = node.data.path if node and node.data else None
        self.dismiss(self.chosen)

    @on(Button.Pressed, "#picker-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
