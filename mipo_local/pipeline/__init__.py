"""A personalization run: its settings (`settings`), its folder and state (`runs`), its stages
(`stages`) and the orchestrator that runs them in order and can be stopped and continued (`run`)."""

from .run import STAGES, RunResult, evaluate_run, run_pipeline
from .runs import latest_finished_run, list_runs, load_state, runs_dir
from .settings import RunSettings, demo_settings

__all__ = ["STAGES", "RunResult", "RunSettings", "demo_settings", "evaluate_run", "latest_finished_run",
           "list_runs", "load_state", "run_pipeline", "runs_dir"]
