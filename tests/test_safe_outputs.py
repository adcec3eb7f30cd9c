"""Outputs: never an input (with or without --force), never a device or FIFO, normal permissions,
no leftover temp files, one clear line when the folder cannot take the file."""
from __future__ import annotations

import os
import socket
import stat

import pytest

from hostile_files import cli, one_error_line, tiny_checkpoint


@pytest.fixture()
def ckpt(tmp_path):
    return tiny_checkpoint(tmp_path / "ckpt.safetensors")


def _writers(src, out):
    """Every command that writes a file, as (name, args) with ``out`` as its output."""
    return [
        ("prune", ["prune", src, "-s", "0.5", "-o", out]),
        ("export-sparse", ["export", src, "-o", out]),
        ("export-dense", ["export", src, "-o", out, "--format", "dense"]),
        ("export-shrunk", ["export", src, "-o", out, "--format", "shrunk"]),
        ("export-onnx", ["export", src, "-o", out, "--format", "onnx"]),
        ("finetune", ["finetune", src, "--teacher", src, "--method", "distill", "--steps", "1", "--batch-size", "2", "-o", out]),
        ("evaluate-out", ["evaluate", src, "-n", "8", "--out", out]),
        ("evaluate-markdown", ["evaluate", src, "-n", "8", "--markdown", out]),
        ("evaluate-samples", ["evaluate", src, "-n", "8", "--samples", out]),
    ]


def _same_file_spellings(ckpt, tmp_path):
    hard = tmp_path / "hard.safetensors"
    os.link(ckpt, hard)
    soft = tmp_path / "soft.safetensors"
    soft.symlink_to(ckpt)
    return {"same": ckpt, "dotted": tmp_path / "." / ckpt.name, "hardlink": hard, "symlink": soft}


@pytest.mark.parametrize("force", [False, True])
def test_no_command_overwrites_its_input(ckpt, tmp_path, force):
    before = ckpt.read_bytes()
    spellings = _same_file_spellings(ckpt, tmp_path)
    for name, template in _writers(ckpt, None):
        for how, out in spellings.items():
            args = [a if a is not None else out for a in template] + (["--force"] if force else [])
            line = one_error_line(cli(*args))
            assert "input" in line, (name, how, line)
            assert ckpt.read_bytes() == before, (name, how)
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_reference_and_data_are_inputs_too(ckpt, tmp_path):
    other = tiny_checkpoint(tmp_path / "other.safetensors", seed=1)
    before = other.read_bytes()
    line = one_error_line(cli("evaluate", ckpt, "--reference", other, "-n", "8", "--out", other, "--force"))
    assert "input" in line and other.read_bytes() == before
    line = one_error_line(cli("finetune", ckpt, "--method", "distill", "--teacher", other, "--steps", "1",
                              "-o", other, "--force"))
    assert "input" in line and other.read_bytes() == before


def _special_outputs(tmp_path):
    fifo = tmp_path / "fifo.safetensors"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock.safetensors"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    null_link = tmp_path / "null.safetensors"
    null_link.symlink_to("/dev/null")
    folder = tmp_path / "dir.safetensors"
    folder.mkdir()
    return sock, {"fifo": fifo, "socket": sock_path, "symlink-to-device": null_link, "directory": folder}


@pytest.mark.parametrize("force", [False, True])
def test_non_regular_outputs_are_refused_not_replaced(ckpt, tmp_path, force):
    sock, outputs = _special_outputs(tmp_path)
    try:
        for how, out in outputs.items():
            kind = stat.S_IFMT(os.lstat(out).st_mode)
            for name, args in _writers(ckpt, out)[:6:2]:
                line = one_error_line(cli(*args, *(["--force"] if force else [])))
                assert str(out.name) in line, (how, name, line)
                assert stat.S_IFMT(os.lstat(out).st_mode) == kind, (how, name)
    finally:
        sock.close()
    assert os.readlink(outputs["symlink-to-device"]) == "/dev/null"


def test_output_folder_that_is_a_file(ckpt, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    for _, args in _writers(ckpt, blocker / "sub" / "out.safetensors")[:5]:
        line = one_error_line(cli(*args))
        assert "afile" in line
    assert blocker.read_text() == "x"


def test_output_folder_that_refuses_writes(ckpt, tmp_path, monkeypatch):
    """A read-only or immutable folder (simulated: root may write anywhere) is the user's problem: exit 2."""
    real_open = os.open

    def refuse(path, flags, *args, **kwargs):
        if str(path).endswith(".tmp"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    for name, args in _writers(ckpt, tmp_path / "out.safetensors")[:5]:
        line = one_error_line(cli(*args))
        assert "out.safetensors" in line and "ermission" in line, (name, line)
    assert not list(tmp_path.glob("out*"))


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_are_written_with_the_umask(ckpt, tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        written = []
        for name, args in _writers(ckpt, None):
            out = tmp_path / f"{name}.out"
            assert cli(*[a if a is not None else out for a in args], "-q").exit_code == 0, name
            written.append(out)
    finally:
        os.umask(old)
    written += list(tmp_path.glob("finetune*.log.jsonl"))
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == mode, (path.name, oct(path.stat().st_mode))


def test_leftover_temp_files_of_a_killed_write_are_cleaned(ckpt, tmp_path):
    out = tmp_path / "pruned.safetensors"
    dead = 2 ** 22 + 12345  # above pid_max's default: no live process has it
    stale = tmp_path / f".pruned.safetensors.{dead}.abcd1234.tmp"
    stale.write_bytes(b"half a file")
    other = tmp_path / ".unrelated.safetensors.1.abcd.tmp"
    other.write_bytes(b"not ours to touch")
    mine = tmp_path / f".pruned.safetensors.{os.getpid()}.live0000.tmp"  # a live writer's file stays
    mine.write_bytes(b"in progress")
    assert cli("prune", ckpt, "-s", "0.5", "-o", out, "-q").exit_code == 0
    assert not stale.exists() and other.exists() and mine.exists()


def test_a_failed_write_leaves_nothing(ckpt, tmp_path, monkeypatch):
    def explode(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", explode)
    r = cli("prune", ckpt, "-s", "0.5", "-o", tmp_path / "p.safetensors")
    line = one_error_line(r, code=1)
    assert "No space left" in line and "p.safetensors" in line
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]
