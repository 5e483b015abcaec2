"""Review pairs: prompt, chosen (with your context), rejected; drop bad ones before training."""

from __future__ import annotations

import json

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Static

from ..bridge import notify_error


class PairsPane(Vertical):
    BINDINGS = [Binding("d", "toggle", "Drop/keep pair")]

    def compose(self) -> ComposeResult:
        yield Static("Pairs of the latest run. [b]d[/b] drops the selected pair (or takes it back); dropped pairs "
                     "are not trained on.", classes="hint")
        yield DataTable(id="pairs-table", cursor_type="row")
        with VerticalScroll(id="pair-detail-box"):
            yield Static("", id="pair-detail")
        with Horizontal(classes="buttons"):
            yield Button("Drop / keep", id="toggle-pair")
            yield Button("Reload", id="reload-pairs")

    def on_mount(self) -> None:
        table = self.query_one("#pairs-table", DataTable)
        table.add_columns("#", "split", "status", "source", "request")
        self.reload()

    @on(Button.Pressed, "#reload-pairs")
    def reload(self) -> None:
        from mipo_local.context import ContextStore
        from mipo_local.pairs import pair_rows

        table = self.query_one("#pairs-table", DataTable)
        table.clear()
        self.rows = {}
        try:
            with ContextStore() as store:
                rows = pair_rows(store, split="all", include_dropped=True)
        except Exception:  # noqa: BLE001 - no pairs yet
            rows = []
        for r in rows:
            self.rows[r["id"]] = dict(r)
            status = "kept" if r["status"] == "ok" else f"dropped: {r['reason']}"
            table.add_row(str(r["id"]), "held out" if r["heldout"] else "train", status, r["source"],
                          Text(" ".join(r["request"].split())[:60]), key=str(r["id"]))
        if not rows:
            self.query_one("#pair-detail", Static).update("No pairs yet: start a run in Personalize (or Make pairs).")

    @on(DataTable.RowHighlighted, "#pairs-table")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is None or event.row_key.value is None:
            return
        r = self.rows.get(int(event.row_key.value))
        if not r:
            return
        context = json.loads(r["context"] or "[]")
        text = Text()
        text.append("Request\n", style="bold")
        text.append(r["request"] + "\n\n")
        text.append(f"Your context ({len(context)} excerpts)\n", style="bold")
        text.append(("\n---\n".join(context))[:1500] + "\n\n")
        text.append("Chosen (with your context)\n", style="bold green")
        text.append(r["chosen"] + "\n\n")
        text.append("Rejected (without it)\n", style="bold red")
        text.append(r["rejected"])
        self.query_one("#pair-detail", Static).update(text)

    @on(Button.Pressed, "#toggle-pair")
    def action_toggle(self) -> None:
        from mipo_local.context import ContextStore
        from mipo_local.pairs.review import USER_DROP, set_pair_kept

        table = self.query_one("#pairs-table", DataTable)
        if not table.row_count:
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        r = self.rows[int(key)]
        keep = r["status"] != "ok"
        try:
            with ContextStore() as store:
                set_pair_kept(store, r["id"], keep)
        except Exception as exc:  # noqa: BLE001
            notify_error(self.app, exc)
            return
        r["status"], r["reason"] = ("ok", None) if keep else ("dropped", USER_DROP)
        table.update_cell(key, table.ordered_columns[2].key, "kept" if keep else f"dropped: {USER_DROP}")
