"""Profiles: several personal models over one base.

A profile is a name and a subset of the imported sources ("work" = the work mailbox, "home" = the
notes vault). `mipo-local run --profile NAME` builds its examples from those sources alone and the
model it makes becomes the profile's active model (`active_model`, per profile). Chat and serve load
the base GGUF once and apply the profile's GGUF LoRA adapter (the `adapter.gguf` its run exported)
at run time, so switching profiles costs no reload and each profile only its adapter file;
retrieval searches the profile's own sources. The default profile (no name, or "default") is every
source, with the model of `active_model.json`: what the app did before profiles.

The definitions live in the context store (`profiles`, `profile_sources`): removing a source takes
it out of every profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ..errors import MipoError
from .profile_names import DEFAULT, check_name, normalize


def create_profile(name: str, sources: Sequence[str]):
    """A new profile over imported sources (paths as imported, or ids from `context --list`)."""
    from ..context import ContextStore

    check_name(name)
    if not sources:
        raise MipoError("a profile needs at least one imported source: --source PATH (`mipo-local context --list` "
                        "shows them)")
    with ContextStore() as store:
        ids = [store.find_source(str(s)).id for s in sources]
        return store.create_profile(name, ids)


def list_profiles() -> list:
    from ..context import ContextStore

    with ContextStore() as store:
        return store.profiles()


def remove_profile(name: str):
    """Forget a profile and which model it had; its runs, models and sources stay."""
    from ..context import ContextStore
    from .active_model import forget

    with ContextStore() as store:
        profile = store.remove_profile(check_name(name))
    forget(name)
    return profile


def profile_sources(name: Optional[str]) -> Optional[tuple[int, ...]]:
    """The ids of a profile's sources; None for the default profile (every source)."""
    from ..context import ContextStore

    name = normalize(name)
    if name is None:
        return None
    with ContextStore() as store:
        profile = store.profile(name)
    if not profile.sources:
        raise MipoError(f"profile {name!r} has no sources left (they were removed); remove it and create it again")
    return profile.source_ids


@dataclass(frozen=True)
class ProfileModel:
    """What chat loads for a profile: the base GGUF and the profile's LoRA on it."""
    profile: Optional[str]                  # None: the default profile
    base: Path                              # the base GGUF the run trained from
    adapter: Path                           # the GGUF LoRA its run exported (its run folder holds settings.json)
    model: Path                             # the profile's active (merged) personal model
    sources: Optional[tuple[int, ...]]      # what retrieval searches; None: every source

    @property
    def label(self) -> str:
        return self.profile or DEFAULT


def profile_model(name: Optional[str]) -> ProfileModel:
    """The profile's active model as base + adapter, or a one-line MipoError saying what to do."""
    import json

    from ..modelio import base_gguf
    from ..modelio.catalog import resolve_base
    from .active_model import active_model

    name = normalize(name)
    sources = profile_sources(name)
    model = active_model(name)
    if model is None:
        how = f"mipo-local run --profile {name}" if name else "mipo-local run"
        raise MipoError(f"profile {name or DEFAULT!r} has no personal model yet; personalize it with `{how}`")
    run_dir = model.parent
    adapter = run_dir / "adapter.gguf"
    try:
        base_spec = json.loads((run_dir / "state.json").read_text()).get("base")
    except (OSError, ValueError):
        base_spec = None
    if not adapter.is_file() or not base_spec:
        raise MipoError(f"{model} was not made by a run (no adapter.gguf and base beside it), so it cannot be "
                        f"switched to at run time; chat with it without --profile")
    return ProfileModel(name, base_gguf(resolve_base(base_spec)), adapter, model, sources)
