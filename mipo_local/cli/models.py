"""Base models and personal models: the catalog, checkpoints, GGUF export, the active model, doctor."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..modelio.quantize import QUANT_TYPES
from ..pipeline.settings import BASE_HELP
from .common import echo


def _cmd_models(args: argparse.Namespace) -> int:
    from ..modelio.catalog import download, get_card, load_catalog

    if args.download:
        from .progress import TerminalProgress

        path = download(get_card(args.download, paths_too=False), progress=TerminalProgress())
        echo(path)
        return 0
    echo(f"{'name':24} {'arch':6} {'params':>6} {'size':>8} {'memory':>7}  available")
    for card in load_catalog():
        where = card.local_path()
        status = f"yes ({'bundled' if card.source_kind == 'bundled' else where})" if where else f"no: `mipo-local models --download {card.name}`"
        mark = "*" if card.default else " "
        echo(f"{card.name + mark:24} {card.architecture:6} {card.parameters:>6} {card.size_mb:>5} MB {card.memory_gb:>5.1f} GB  {status}")
    echo("* the default. Any GGUF file or Hugging Face model folder also works as --base.")
    from ..modelio.catalog import machine_memory, recommend

    echo(recommend(load_catalog(), machine_memory())[1])
    return 0


def _cmd_checkpoint(args: argparse.Namespace) -> int:
    from ..modelio import base_checkpoint
    from ..modelio.catalog import resolve_base
    from .progress import TerminalProgress

    base = resolve_base(args.base)
    echo(base_checkpoint(base, progress=TerminalProgress()))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from ..modelio import export_model
    from .progress import TerminalProgress

    result = export_model(
        args.base,
        Path(args.checkpoint),
        Path(args.out),
        quant=args.quant,
        name=args.name,
        verify=not args.no_verify,
        overwrite=args.force,
        progress=TerminalProgress(),
    )
    check = ""
    if result.correlation is not None:
        check = f"; F16 logits vs checkpoint: correlation {result.correlation:.5f}, argmax {result.argmax_agreement:.1%}"
    echo(f"wrote {result.path} ({result.quant}, {result.size_bytes / 1e6:.1f} MB{check})")
    return 0



def _cmd_active(args: argparse.Namespace) -> int:
    from ..chat.active_model import active_model, history, switch_back
    from ..chat.profile_names import normalize
    from ..chat.profiles import profile_sources

    profile = normalize(args.profile)
    profile_sources(profile)              # an unknown profile is one clear line
    if args.switch_back:
        echo(f"active again: {switch_back(profile)}")
        return 0
    model = active_model(profile)
    how = f"mipo-local run --profile {profile}" if profile else "mipo-local run"
    echo(f"active model{f' of profile {profile}' if profile else ''}: {model or f'none yet ({how} makes one)'}")
    for earlier in reversed(history(profile)):
        echo(f"  earlier: {earlier}")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import run_doctor

    checks = run_doctor(probe=not args.no_probe)
    for check in checks:
        echo(f"{'ok ' if check.ok else 'BAD'} {check.name:16} {check.detail}")
    return 0 if all(c.ok for c in checks) else 1



def register(sub) -> None:
    p = sub.add_parser("models", help="list the catalog of base models and which are on this machine")
    p.add_argument("--download", metavar="NAME", help="fetch a catalog model from the Hugging Face hub")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("checkpoint", help="prepare a base as a trainable PyTorch checkpoint (cached) and print its folder")
    p.add_argument("--base", default=None, help=BASE_HELP)
    p.set_defaults(func=_cmd_checkpoint)

    p = sub.add_parser("export", help="write a (merged) checkpoint as a GGUF, metadata from its base, quantized")
    p.add_argument("--base", required=True, help="catalog name, GGUF path or model folder the checkpoint came from")
    p.add_argument("--checkpoint", required=True, help="folder of the merged model (safetensors + config.json)")
    p.add_argument("--quant", default="Q8_0", help=f"quantization of the GGUF: one of {', '.join(QUANT_TYPES)} (default Q8_0)")
    p.add_argument("--out", required=True, help="the .gguf file to write")
    p.add_argument("--name", default=None, help="general.name of the new model")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--no-verify", action="store_true", help="skip the logit check of the F16 file against the checkpoint")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("active", help="which personal model is active, the earlier ones, and switching back")
    p.add_argument("--switch-back", action="store_true", help="make the previously active model active again")
    p.add_argument("--profile", metavar="NAME", help="a profile's active model (default: the default profile's)")
    p.add_argument("--demo", action="store_true", help="in the demo workspace")
    p.set_defaults(func=_cmd_active)

    p = sub.add_parser("doctor", help="versions, device, threads, disk, and whether llama.cpp can decode here")
    p.add_argument("--no-probe", action="store_true", help="skip the decode test")
    p.set_defaults(func=_cmd_doctor)

