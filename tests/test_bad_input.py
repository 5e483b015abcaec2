"""Bad input: one clear line, a non-zero exit, and no partial output file."""

from __future__ import annotations

import resource
import signal
from pathlib import Path

import pytest

from mipo_local.errors import MipoError
from mipo_local.modelio import checkpoint_to_gguf, gguf_to_checkpoint, inspect_gguf

from .helpers import assert_one_line_error, run_cli


def write_foreign_gguf(path: Path, arch: str = "gpt2") -> Path:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_not_a_gguf(tmp_path):
    bad = tmp_path / "notes.gguf"
    bad.write_text("just some text, not a model\n" * 10)
    with pytest.raises(MipoError, match="not a GGUF file"):
        inspect_gguf(bad)


@pytest.mark.parametrize("keep", [1000, 10_000_000])
def test_truncated_gguf(tmp_path, bundled_gguf, keep):
    cut = tmp_path / "cut.gguf"
    with open(bundled_gguf, "rb") as src, open(cut, "wb") as dst:
        dst.write(src.read(keep))
    with pytest.raises(MipoError, match="truncated"):
        inspect_gguf(cut)
    with pytest.raises(MipoError, match="truncated"):
        gguf_to_checkpoint(cut)


def test_missing_path(tmp_path):
    with pytest.raises(MipoError, match="does not exist"):
        inspect_gguf(tmp_path / "nope.gguf")


def test_unsupported_architecture_gguf(tmp_path):
    foreign = write_foreign_gguf(tmp_path / "gpt2.gguf")
    with pytest.raises(MipoError, match="'gpt2' model"):
        gguf_to_checkpoint(foreign)


def test_unsupported_architecture_checkpoint(tmp_path, smol_checkpoint, bundled_gguf):
    folder = tmp_path / "gpt2-folder"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "gpt2", "n_layer": 1}')
    with pytest.raises(MipoError, match="'gpt2' model"):
        checkpoint_to_gguf(folder, tmp_path / "out.gguf", base_gguf=bundled_gguf)
    assert not (tmp_path / "out.gguf").exists()


def _bad_export(case: str, tmp_path: Path, checkpoint: Path, base: Path) -> tuple[list[str], str]:
    """`export` arguments with one kind of bad input, and what its error line must say."""
    if case == "missing checkpoint":
        return ["--base", str(base), "--checkpoint", str(tmp_path / "missing")], "does not exist"
    if case == "base not a GGUF":
        text = tmp_path / "model.gguf"
        text.write_text("hello")
        return ["--base", str(text), "--checkpoint", str(checkpoint)], "not a GGUF file"
    if case == "unsupported architecture":
        return ["--base", str(write_foreign_gguf(tmp_path / "g.gguf")), "--checkpoint", str(checkpoint)], "'gpt2' model"
    if case == "unknown quant type":
        return ["--base", str(base), "--checkpoint", str(checkpoint), "--quant", "Q2"], "unknown quantization"
    assert case == "truncated base", case
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(base.read_bytes()[:5_000_000])
    return ["--base", str(cut), "--checkpoint", str(checkpoint)], "truncated"


@pytest.mark.parametrize("case", ["missing checkpoint", "base not a GGUF", "unsupported architecture",
                                  "unknown quant type", "truncated base"])
def test_cli_errors_are_one_line(tmp_path, smol_checkpoint, bundled_gguf, case):
    out = tmp_path / "out.gguf"
    args, says = _bad_export(case, tmp_path, smol_checkpoint, bundled_gguf)
    proc = run_cli(["export", *args, "--out", str(out)], tmp_path / "home")
    assert_one_line_error(proc, says)
    assert not out.exists()


def test_full_disk_leaves_nothing(tmp_path, smol_checkpoint, bundled_gguf):
    """A write that fails part way (file size limit as a stand-in for a full disk) leaves no partial file."""
    home = tmp_path / "home"
    out_dir = tmp_path / "exports"
    out_dir.mkdir()

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write becomes an error, not a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024 * 1024, 64 * 1024 * 1024))

    proc = run_cli(["export", "--base", str(bundled_gguf), "--checkpoint", str(smol_checkpoint), "--quant", "F16",
                    "--out", str(out_dir / "personal.gguf")], home, preexec=limit)
    assert_one_line_error(proc, "could not write", "disk")
    assert list(out_dir.iterdir()) == []
    leftovers = [p for p in home.rglob("*") if p.is_file() and p.suffix in (".part", ".gguf")]
    assert leftovers == []


def test_output_is_not_overwritten(tmp_path, smol_checkpoint, bundled_gguf):
    out = tmp_path / "exists.gguf"
    out.write_bytes(b"precious")
    proc = run_cli(["export", "--base", str(bundled_gguf), "--checkpoint", str(smol_checkpoint), "--out", str(out)], tmp_path / "h")
    assert_one_line_error(proc, "already exists")
    assert out.read_bytes() == b"precious"
