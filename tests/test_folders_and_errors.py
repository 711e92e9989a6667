"""Folders checked where the files will go, the newer commands' failures as one line,
and the library's own error types at its boundary.

Read-only folders are simulated through ``os.access`` (what diet_np checks), so the
tests hold as root too, which may write anywhere; the same checks were run by hand on
a read-only file system (see the module :mod:`diet_np.outputs`).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import vgg5_files
from diet_np import cli
from diet_np.architectures import build_network
from diet_np.errors import (ConfigError, DietError, ParameterError, ParameterKeyError,
                            ParameterTypeError)
from diet_np.optim import SGD, Adam
from diet_np.outputs import check_output_file, check_run_dir

DATA = ["--n-test", "10", "--quiet"]


@pytest.fixture
def read_only(monkeypatch):
    """``read_only(path)``: ``os.access`` reports ``path`` (and nothing under it) not
    writable, as for a non-root user in a folder of mode 0555."""
    folders = set()
    real = os.access

    def access(path, mode, **kw):
        if mode & os.W_OK and os.path.abspath(path) in folders:
            return False
        return real(path, mode, **kw)
    monkeypatch.setattr(os, "access", access)
    return lambda path: folders.add(os.path.abspath(path))


@pytest.fixture(scope="module")
def snn(tmp_path_factory):
    """The folder of conftest.vgg5_files: ann.npz, snn.npz, rate.npz."""
    folder = tmp_path_factory.mktemp("snn")
    vgg5_files(folder)
    return folder


def one_line(capsys, argv):
    assert cli.main(argv) == 2, argv
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_a_writable_run_folder_under_a_read_only_parent_is_used(tmp_path, read_only):
    run = tmp_path / "parent" / "run"
    run.mkdir(parents=True)
    read_only(tmp_path / "parent")
    assert check_run_dir(run, resume=False, overwrite=False) == []
    with pytest.raises(DietError, match="folder .*parent is not writable"):
        check_run_dir(tmp_path / "parent" / "new", resume=False, overwrite=False)
    read_only(run)
    with pytest.raises(DietError, match="folder .*run is not writable"):
        check_run_dir(run, resume=False, overwrite=False)


def test_train_ann_runs_in_a_writable_folder_under_a_read_only_parent(tmp_path, capsys,
                                                                      read_only):
    run = tmp_path / "parent" / "run"
    run.mkdir(parents=True)
    read_only(tmp_path / "parent")
    assert cli.main(["train-ann", "--epochs", "1", "--n-train", "20", "--batch-size", "10",
                     "--out", str(run)] + DATA) == 0
    assert (run / "checkpoint.npz").exists()


@pytest.mark.parametrize("command", ["convert", "export", "import", "inspect", "lessons",
                                     "finetune"])
def test_an_output_in_a_read_only_folder_is_one_line_and_nothing_is_made(snn, tmp_path, capsys,
                                                                         read_only, command):
    read_only(tmp_path)
    out = tmp_path / "sub" / ("figs" if command in ("inspect", "lessons", "finetune")
                              else "x.npz")
    argv = {"convert": ["--checkpoint", str(snn / "ann.npz")],
            "export": ["--checkpoint", str(snn / "snn.npz")],
            "import": ["--from", str(snn / "missing.npz"), "--arch", "vgg5", "--dataset",
                       "shapes"],
            "inspect": ["--checkpoint", str(snn / "snn.npz")],
            "finetune": ["--checkpoint", str(snn / "snn.npz")]}.get(command, [])
    argv = [command] + argv + (["--copy", str(out)] if command == "lessons" else
                               ["--out", str(out)])
    line = one_line(capsys, argv)
    assert f"folder {tmp_path} is not writable" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["inspect", "lessons"])
def test_an_output_folder_that_is_a_file_is_one_line(snn, tmp_path, capsys, command):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for out in (a_file, a_file / "below"):
        argv = ["lessons", "--copy", str(out)] if command == "lessons" else \
            ["inspect", "--checkpoint", str(snn / "snn.npz"), "--out", str(out)]
        assert "is a file, not a folder" in one_line(capsys, argv)
    assert a_file.read_text() == "x"


def test_check_output_file_makes_no_folder(tmp_path):
    check_output_file(tmp_path / "a" / "b" / "x.npz", overwrite=False)
    assert list(tmp_path.iterdir()) == []


def test_inspect_runs_a_rate_coded_snn_and_skips_a_damaged_log(snn, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.npz").write_bytes((snn / "rate.npz").read_bytes())
    (run / "log.jsonl").write_text(json.dumps({"epoch": 1, "leaks": {"conv1": 0.9}}) + "\n"
                                   + "{not json\n")
    assert cli.main(["inspect", "--checkpoint", str(run / "checkpoint.npz"), "--out",
                     str(tmp_path / "figs"), "--images", "4"] + DATA) == 0
    err = capsys.readouterr().err
    assert "line 2 is not valid JSON" in err and "leak_threshold.png is left out" in err
    assert (tmp_path / "figs" / "spike_rates.png").exists()
    assert not (tmp_path / "figs" / "leak_threshold.png").exists()


def test_lessons_list_into_a_closed_pipe_ends_quietly():
    code = ("import sys; from diet_np.cli import main; sys.stdout.close = lambda: None; "
            "raise SystemExit(main(['lessons', '--list']))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=os.path.dirname(os.path.dirname(
                                os.path.abspath(__file__))))
    proc.stdout.read(10)
    proc.stdout.close()                    # as `| head -c 10` does
    err = proc.stderr.read().decode()
    assert proc.wait() in (0, 141) and "Traceback" not in err and "BrokenPipe" not in err, err


def test_network_validate_and_the_optimisers_raise_diet_errors():
    """Library errors at the boundary are DietErrors, still ValueError/TypeError/KeyError."""
    net = build_network("vgg5")
    params = net.init_params(0)
    bad = [({**params, "conv1.leak": np.array(1.5, np.float32)}, ParameterError, ValueError),
           ({**params, "conv1.threshold": np.array(-1.0, np.float32)}, ParameterError,
            ValueError),
           ({**params, "conv1.leak": np.array(1, np.int64)}, ParameterTypeError, TypeError),
           ({**params, "conv1.weight": params["conv1.weight"].astype(np.float64)},
            ParameterTypeError, TypeError),
           ({k: v for k, v in params.items() if k != "fc1.weight"}, ParameterKeyError, KeyError)]
    for p, kind, builtin in bad:
        with pytest.raises(kind) as caught:
            net.validate(p, mode="snn")
        assert isinstance(caught.value, (DietError, builtin)) and "\n" not in str(caught.value)
    assert str(ParameterKeyError("a message")) == "a message"
    for make in (lambda: SGD(0.1, momentum=1.0), lambda: SGD(0.1, momentum=-1),
                 lambda: SGD(0.1, weight_decay=float("inf")), lambda: Adam(0.1, eps=0),
                 lambda: Adam(float("nan"))):
        with pytest.raises(ConfigError):
            make()
    with pytest.raises(ParameterError):
        SGD(0.1).step(params, {})


def test_a_copy_of_the_lessons_that_fails_midway_is_taken_back(tmp_path, capsys, monkeypatch):
    import shutil
    copies = []
    real = shutil.copy2

    def full_disk(src, dst):
        if copies:
            raise OSError(28, "No space left on device")
        copies.append(dst)
        return real(src, dst)
    monkeypatch.setattr(shutil, "copy2", full_disk)
    line = one_line(capsys, ["lessons", "--copy", str(tmp_path / "new")])
    assert "No space left on device" in line and copies
    assert list(tmp_path.iterdir()) == []
