"""One training process under `accelerate launch`: `python -m mipo_local.train.launch JOB.json`.

Every process runs `train_lora` on the job `distributed.launch_training` wrote (base checkpoint, pairs,
settings); the main process prints progress events as JSON lines and writes the result file. A wrong
job is one `mipo-local: error:` line and exit 1, as for the command line.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from ..errors import MipoError
from ..progress import ProgressEvent
from .distributed import EVENT_PREFIX
from .world import World


def _print_event(event: ProgressEvent) -> None:
    print(EVENT_PREFIX + json.dumps(dataclasses.asdict(event), default=str), flush=True)


def run_job(job_file: Path) -> int:
    from ..workspace import write_text_atomic
    from .data import load_pairs_jsonl
    from .settings import TrainSettings
    from .trainer import train_lora

    try:
        job = json.loads(Path(job_file).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise MipoError(f"cannot read the training job {job_file} ({exc}); start training with `mipo-local train "
                        "--accelerate-config FILE`") from None
    names = {f.name for f in dataclasses.fields(TrainSettings)}
    settings = TrainSettings(**{k: v for k, v in job["settings"].items() if k in names})
    stop_file = Path(job["stop_file"])
    extra = {"init_adapter": Path(job["init_adapter"])} if job.get("init_adapter") else {}
    result = train_lora(Path(job["checkpoint"]), load_pairs_jsonl(Path(job["pairs"])), Path(job["run_dir"]), settings,
                        resume=job["resume"], max_steps=job["max_steps"], progress=_print_event,
                        should_stop=stop_file.exists,
                        heldout=load_pairs_jsonl(Path(job["heldout"])) if job.get("heldout") else (), **extra)
    if World.current().is_main:
        out = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
        out["run_dir"], out["adapter_dir"] = str(result.run_dir), str(result.adapter_dir) if result.adapter_dir else None
        write_text_atomic(Path(job["result_file"]), json.dumps(out, default=str))
    return 0


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("mipo-local: error: usage: python -m mipo_local.train.launch JOB.json (written by `mipo-local train "
              "--accelerate-config FILE`)", file=sys.stderr)
        return 2
    try:
        return run_job(Path(args[0]))
    except MipoError as exc:
        print(f"mipo-local: error: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
