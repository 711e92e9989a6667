"""Every numeric flag of every subcommand with values out of its range, and counts
whose arrays cannot fit: exit status 2, one error line, no traceback, no folder left.

The flags are found in the parser itself (by their argparse type), so a numeric
flag added later is tried too.
"""
import numpy as np
import pytest

from conftest import vgg5_files
from diet_np import cli
from diet_np.weights import write_tensors

BAD = {cli.positive_int: ["0", "-3", "2.5", "ten"],
       cli.positive_float: ["0", "-1", "nan", "inf", "x"],
       cli.non_negative_float: ["-1", "nan", "inf", "-inf"],
       cli.fraction: ["1", "1.5", "-0.1", "nan"]}
NON_NEGATIVE_INT = ["-1", "0.5", "seven"]            # cli.int_at_least(0), a new function each time


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """vgg5 checkpoints (conftest.vgg5_files) and an exported weights file."""
    folder = tmp_path_factory.mktemp("inputs")
    params = vgg5_files(folder)
    write_tensors(folder / "w.safetensors", {k: v for k, v in params.items()
                                             if k.endswith(".weight")})
    return folder


def base_argv(command, inputs, out):
    """The smallest valid command line of each subcommand, writing under ``out``."""
    return {"demo": ["--out", str(out / "demo")],
            "train-ann": ["--out", str(out / "ann")],
            "convert": ["--checkpoint", str(inputs / "ann.npz"), "--out", str(out / "c.npz")],
            "finetune": ["--checkpoint", str(inputs / "snn.npz"), "--out", str(out / "diet")],
            "evaluate": ["--checkpoint", str(inputs / "snn.npz")],
            "energy": ["--checkpoint", str(inputs / "snn.npz")],
            "inspect": ["--checkpoint", str(inputs / "snn.npz"), "--out", str(out / "figs")],
            "import": ["--from", str(inputs / "w.safetensors"), "--arch", "vgg5", "--format",
                       "diet-np", "--dataset", "shapes", "--out", str(out / "i.npz")],
            "export": ["--checkpoint", str(inputs / "snn.npz"), "--out", str(out / "w.npz")],
            "lessons": ["--list"]}[command]


def numeric_flags():
    """``(command, flag, bad values)`` for every flag with a numeric argparse type."""
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.choices and "demo" in a.choices)
    cases = []
    for command, p in sub.choices.items():
        for action in p._actions:
            if action.type in BAD:
                values = BAD[action.type]
            elif getattr(action.type, "__qualname__", "") == "int_at_least.<locals>.parse":
                values = NON_NEGATIVE_INT
            else:
                continue
            cases += [(command, action.option_strings[0], v) for v in values]
    return cases


CASES = numeric_flags()


def test_every_subcommand_has_its_numeric_flags_in_the_table():
    assert {c for c, _, _ in CASES} == {"demo", "train-ann", "convert", "finetune", "evaluate",
                                        "energy", "inspect", "import"}
    assert {f for c, f, _ in CASES if c == "train-ann"} >= {"--momentum", "--weight-decay",
                                                            "--lr", "--epochs", "--batch-size"}


def refused(capsys, argv, tmp_path, flag=None):
    """Exit status 2, the last stderr line an ``error:`` line naming ``flag``, no
    traceback, nothing left in ``tmp_path``."""
    try:
        code = cli.main(argv)
    except SystemExit as exc:             # argparse's own refusal
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, argv
    assert "Traceback" not in err and ": error: " in err.strip().splitlines()[-1], err
    if flag is not None:
        assert flag in err.strip().splitlines()[-1], err
    assert list(tmp_path.iterdir()) == [], f"{argv} left {list(tmp_path.iterdir())}"
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize("command, flag, value", CASES)
def test_an_out_of_range_value_is_refused_by_name(inputs, tmp_path, capsys, command, flag,
                                                  value):
    refused(capsys, [command] + base_argv(command, inputs, tmp_path) + [flag, value], tmp_path,
            flag)


HUGE = "1000000000000"
TOO_BIG = [("demo", ["--timesteps", HUGE]), ("demo", ["--long-timesteps", HUGE]),
           ("demo", ["--n-train", HUGE]), ("train-ann", ["--n-train", HUGE]),
           ("train-ann", ["--n-test", HUGE]), ("convert", ["--timesteps", HUGE]),
           ("finetune", ["--timesteps", HUGE]), ("finetune", ["--n-test", HUGE]),
           ("finetune", ["--batch-size", "20", "--timesteps", "100000000"]),
           ("evaluate", ["--timesteps", HUGE]), ("evaluate", ["--timesteps", "5", HUGE]),
           ("energy", ["--timesteps", HUGE]), ("inspect", ["--timesteps", HUGE]),
           ("inspect", ["--images", HUGE])]


@pytest.mark.parametrize("command, extra", TOO_BIG)
def test_counts_whose_arrays_cannot_fit_are_refused_up_front(inputs, tmp_path, capsys,
                                                             monkeypatch, command, extra):
    """Refused with the estimated size (or, for --images, the test set's size) before any
    data set is drawn or folder made."""
    line = refused(capsys, [command] + base_argv(command, inputs, tmp_path) + extra
                   + ["--quiet"], tmp_path)
    assert "needs about" in line and "iB of arrays" in line or "more than the" in line, line


@pytest.mark.parametrize("flag, value, message", [
    ("--momentum", "0.5", "--momentum is SGD's; this run uses adam"),
])
def test_a_setting_the_optimiser_would_ignore_is_refused(inputs, tmp_path, capsys, flag, value,
                                                         message):
    line = refused(capsys, ["train-ann", "--out", str(tmp_path / "ann"), "--optimizer", "adam",
                            flag, value], tmp_path)
    assert message in line


def test_the_config_refuses_what_argparse_would(tmp_path):
    """The library's own check (TrainConfig.validate) holds the same ranges."""
    from diet_np.errors import ConfigError
    from diet_np.training import ann_config
    for change in ({"momentum": 1.0}, {"momentum": -0.5}, {"weight_decay": float("inf")},
                   {"weight_decay": -1e-4}, {"lr": float("nan")}, {"dropout": {"conv": 0.1}},
                   {"neuron_lr_factor": float("inf")}):
        with pytest.raises(ConfigError):
            ann_config(**change).validate()
    assert np.isfinite(ann_config().weight_decay)
