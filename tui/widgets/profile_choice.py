"""The profile pickers (Chat and Personalize tabs): a Select of "all sources" and each profile."""

from __future__ import annotations

from textual.widget import Widget
from textual.widgets import Select


def refresh_profile_choice(picker: Select, *shown_with: Widget) -> None:
    """Fill `picker` with the workspace's profiles, keeping its choice when that profile still
    exists (else the default), without posting Select.Changed; it and `shown_with` (its label) are
    shown only when there are profiles besides the default."""
    from mipo_local.chat.profile_names import DEFAULT
    from mipo_local.chat.profiles import list_profiles

    try:
        names = [p.name for p in list_profiles()]
    except Exception:  # noqa: BLE001 - a store another process is writing: keep the picker as it is
        return
    current = picker.value if picker.value in names else DEFAULT
    with picker.prevent(Select.Changed):
        picker.set_options([("all sources", DEFAULT)] + [(f"profile: {n}", n) for n in names])
        picker.value = current
    for widget in (picker, *shown_with):
        widget.display = bool(names)
