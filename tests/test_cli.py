"""The command line: instant help, the catalog, offline download errors, a full export, doctor."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mipo_local.modelio.gguf_file import read_metadata

from .helpers import assert_one_line_error, run_cli

HEAVY = ("torch", "transformers", "trl", "peft", "llama_cpp", "textual", "gguf", "numpy")


def test_help_imports_nothing_heavy():
    code = (
        "import sys\nfrom mipo_local.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    assert "models" in proc.stdout and "export" in proc.stdout and "doctor" in proc.stdout


def test_models_lists_catalog(tmp_path):
    proc = run_cli(["models"], tmp_path / "h")
    assert proc.returncode == 0, proc.stderr
    for name in ("smollm2-135m-instruct", "qwen2.5-0.5b-instruct", "qwen2.5-1.5b-instruct", "llama-3.2-1b-instruct",
                 "smollm2-360m-instruct", "smollm2-1.7b-instruct", "qwen3-0.6b"):
        assert name in proc.stdout
    line = next(l for l in proc.stdout.splitlines() if l.startswith("smollm2-135m-instruct"))
    assert "yes (bundled)" in line


def test_download_offline_says_where_to_place_the_file(tmp_path):
    home = tmp_path / "h"
    proc = run_cli(["models", "--download", "qwen3-0.6b"], home)
    assert_one_line_error(proc, "qwen3-0.6b", "Qwen3-0.6B-Q8_0.gguf", str(home / "models"))


def test_hand_placed_file_makes_a_model_available(tmp_path, mipo_home, bundled_gguf):
    from mipo_local.modelio.catalog import get_card, resolve_base

    card = get_card("smollm2-360m-instruct")
    assert not card.available
    (mipo_home / "models").mkdir(parents=True, exist_ok=True)
    os.symlink(bundled_gguf, mipo_home / "models" / card.file)
    assert card.available
    assert resolve_base("smollm2-360m-instruct").path == mipo_home / "models" / card.file


def test_export_end_to_end(tmp_path, smol_checkpoint, session_home, session_cache):
    out = tmp_path / "personal.Q8_0.gguf"
    proc = run_cli(["export", "--base", "smollm2-135m-instruct", "--checkpoint", str(smol_checkpoint), "--quant", "Q8_0",
                    "--out", str(out), "--name", "Ada's model"], session_home)
    assert proc.returncode == 0, proc.stderr
    assert "correlation" in proc.stdout
    meta = read_metadata(out)
    assert meta["general.name"] == "Ada's model"
    assert meta["general.file_type"] == 7  # MOSTLY_Q8_0
    assert meta["tokenizer.chat_template"]
    assert [p.name for p in tmp_path.iterdir() if p.suffix in (".gguf", ".part")] == [out.name]
    assert not list((session_cache / "tmp").glob("*.f16.gguf"))  # the F16 intermediate is gone


def test_doctor_decodes(tmp_path):
    proc = run_cli(["doctor"], tmp_path / "h")
    assert "llama.cpp decode" in proc.stdout
    decode = next(l for l in proc.stdout.splitlines() if "llama.cpp decode" in l)
    assert decode.startswith("ok"), proc.stdout
    assert "device" in proc.stdout and "threads" in proc.stdout
    import llama_cpp

    stages = next(l for l in proc.stdout.splitlines() if l.split()[1:2] == ["stages"])   # where each stage runs
    assert "training and scoring on" in stages
    assert ("llama.cpp (pairs, chat, the evaluation's sampling) on GPU" in stages) == llama_cpp.llama_supports_gpu_offload()


def test_llama_cpp_offloads_every_layer_where_its_build_can(bundled_gguf, monkeypatch):
    """Every model llama.cpp opens goes to the GPU where the build supports offload (CUDA, Metal), on
    the CPU where it does not or with MIPO_LLAMA_GPU=0 (issue 28): the settings' path, on any machine."""
    import llama_cpp

    from mipo_local.inference.llama_runtime import GPU_ENV, gpu_layers, llama_model

    monkeypatch.delenv(GPU_ENV, raising=False)
    offload = llama_cpp.llama_supports_gpu_offload()
    assert gpu_layers() == (-1 if offload else 0)
    with llama_model(bundled_gguf, n_ctx=256) as llm:
        assert llm.model_params.n_gpu_layers == (0x7FFFFFFF if offload else 0)
        assert llm.create_completion("The capital of France is", max_tokens=3, temperature=0.0)["choices"][0]["text"]
    monkeypatch.setenv(GPU_ENV, "0")
    assert gpu_layers() == 0
    with llama_model(bundled_gguf, n_ctx=256) as llm:
        assert llm.model_params.n_gpu_layers == 0


def test_nothing_written_outside_the_workspace(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {**os.environ, "MIPO_HOME": str(tmp_path / "h")}
    subprocess.run([sys.executable, "-m", "mipo_local", "models"], cwd=cwd, env=env, check=True, capture_output=True)
    assert list(cwd.iterdir()) == []


@pytest.mark.parametrize("args, says", [
    (["run", "--quant", "Q2"], "unknown quant 'Q2'; choose one of F16"),
    (["run", "--strategy", "random"], "unknown strategy 'random'"),
    (["pairs", "--examples", "many"], "argument --examples: invalid int value"),
    (["train", "--no-such-flag"], "unrecognized arguments"),
])
def test_a_wrong_command_line_is_one_line(mipo_home, args, says):
    assert_one_line_error(run_cli(args, mipo_home), says)


@pytest.mark.parametrize("args,says", [
    (["pairs", "--examples", "0"], "--examples 0 is out of range; it must be at least 1"),
    (["pairs", "--top-p", "1.5"], "--top-p 1.5 is out of range"),
    (["pairs", "--temperature", "-1"], "--temperature -1 is out of range"),
    (["run", "--lr", "nan"], "--lr nan is not a number"),
    (["train", "--epochs", "0"], "--epochs 0 is out of range; it must be more than 0"),
    (["train", "--batch-size", "0"], "--batch-size 0 is out of range"),
    (["run", "--max-steps", "0"], "--max-steps 0 is out of range"),
    (["run", "--replay-fraction", "1"], "--replay-fraction 1 is out of range; it must be at least 0 and less than 1"),
    (["run", "--context-tokens", "0"], "--context-tokens 0 is out of range"),
    (["run", "--eval-examples", "-3"], "--eval-examples -3 is out of range"),
    (["import", "--max-file-mb", "nan", "."], "not a number of megabytes"),
    (["import", "--max-file-mb", "-1", "."], "would skip every file"),
])
def test_a_number_out_of_range_is_refused_before_any_work(mipo_home, args, says):
    proc = run_cli(args, mipo_home, timeout=60)
    assert_one_line_error(proc, says)
    assert not (mipo_home / "runs").exists() and not (mipo_home / "settings.json").exists()


def test_a_size_limit_saved_broken_falls_back_to_the_default(mipo_home, tmp_path):
    from mipo_local.settings import UserSettings, load_settings

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("A note of mine.\n")
    assert run_cli(["context"], mipo_home).returncode == 0
    (mipo_home / "settings.json").write_text('{"max_file_mb": NaN, "max_mailbox_mb": -5}')
    assert load_settings().max_file_mb == UserSettings().max_file_mb
    assert run_cli(["import", str(tmp_path / "notes")], mipo_home).returncode == 0


@pytest.mark.parametrize("args,says", [
    (["context", "--search", "x", "-k", "99999999999999999999"], "argument -k: 99999999999999999999 is out of range"),
    (["context", "--search", "x", "-k", "0"], "argument -k: 0 is out of range"),
    (["serve", "--base", "--port", "99999"], "argument --port: 99999 is out of range; give 0 to 65535"),
    (["serve", "--base", "--port", "-1"], "argument --port: -1 is out of range"),
    (["chat", "--base", "--compare", "-m", "hi"], "with --base both would be the base"),
    (["chat", "--resume", "--compare", "-m", "hi"], "cannot continue a saved one"),
    (["chat", "-m", " "], "-m was given nothing"),
    (["models", "--download", "nope"], "no model named 'nope' in the catalog; choose one of: smollm2-135m-instruct"),
    (["import", "--me", "notanaddress", "."], "'notanaddress' is not an email address"),
    (["context", "--search", " "], "--search was given nothing"),
    (["run", "--base", "", "--pairs-only"], "--base was given nothing"),
    (["pairs", "--base", " "], "the base model was given as nothing"),
    (["run", "--me", "x@", "--pairs-only"], "'x@' is not an email address"),
])
def test_counts_and_ports_out_of_range_are_one_line(mipo_home, args, says):
    assert_one_line_error(run_cli(args, mipo_home, timeout=60), says)


def test_the_app_without_a_terminal_says_so(mipo_home):
    env = {**os.environ, "MIPO_HOME": str(mipo_home)}
    proc = subprocess.run([sys.executable, "-m", "mipo_local"], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, env=env, timeout=60)
    assert_one_line_error(proc, "the app needs a terminal")


def test_me_with_a_display_name_saves_the_address(mipo_home, tmp_path):
    import json

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("A note of mine.\n")
    assert run_cli(["import", "--me", "You <Me@Example.org>", str(tmp_path / "notes")], mipo_home).returncode == 0
    assert json.loads((mipo_home / "settings.json").read_text())["addresses"] == ["me@example.org"]


def test_empty_answers_say_so(mipo_home):
    assert "nothing imported yet" in run_cli(["context", "--search", "kelp"], mipo_home).stdout
    assert "no sources yet" in run_cli(["context", "--list"], mipo_home).stdout
    assert "no saved conversations yet" in run_cli(["chat", "--list"], mipo_home).stdout
