"""The commands of the README and of the pages of docs/: every ``diet-np`` command they
show parses, the short ones run."""
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from diet_np import cli

README = Path(__file__).resolve().parents[1] / "README.md"
PAGES = [README, *sorted((README.parent / "docs").glob("*.md"))]

#: Commands quick enough to run in the default suite (the rest train for minutes or hours).
SHORT = ("energy --arch", "lessons --list", "--version")


def readme_commands(text):
    """Every ``diet-np ...`` command of the text: lines of its fenced blocks (with
    backslash continuations joined) and inline code spans, as argument lists."""
    commands = []
    for lang, block in re.findall(r"^```(\w*)\n(.*?)^```$", text, re.S | re.M):
        if lang not in ("bash", "sh", ""):
            continue
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].split("&&")[-1].strip()
            if line.startswith("diet-np "):
                commands.append(shlex.split(line)[1:])
    for span in re.findall(r"`(diet-np [^`]+)`", text):
        commands.append(shlex.split(span)[1:])
    return commands


def _subcommands():
    parser = cli.build_parser()
    actions = [a for a in parser._actions if a.choices and isinstance(a.choices, dict)]
    return set(actions[0].choices)


COMMANDS = [c for page in PAGES for c in readme_commands(page.read_text())]
#: A span that names only a subcommand (`diet-np export`) mentions it; it is not run.
MENTIONS = [c for c in COMMANDS if len(c) == 1 and not c[0].startswith("-")]


def test_the_readme_shows_the_pipeline():
    commands = readme_commands(README.read_text())
    assert len(commands) >= 8
    shown = {c[0] for c in commands}
    assert {"demo", "train-ann", "convert", "finetune", "evaluate", "energy"} <= shown


def test_each_command_the_readme_names_exists():
    assert {c[0] for c in MENTIONS} <= _subcommands()


@pytest.mark.parametrize("argv", [c for c in COMMANDS if c not in MENTIONS],
                         ids=lambda c: " ".join(c)[:60])
def test_each_readme_command_parses(argv):
    try:
        cli.build_parser().parse_args(argv)
    except SystemExit as exc:
        assert exc.code == 0, f"`diet-np {' '.join(argv)}` does not parse"


@pytest.mark.parametrize("argv", [c for c in COMMANDS if " ".join(c).startswith(SHORT)],
                         ids=lambda c: " ".join(c))
def test_short_readme_commands_run(argv, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as exc:          # --version exits through argparse
        code = exc.code
    assert code == 0, capsys.readouterr().err


def run_cpu_script(tmp_path, arch, times=1):
    """``sh benchmarks/cpu_cifar10.sh RUN ARCH`` ``times`` times, with stand-ins for
    ``diet-np`` and ``python`` that only log their arguments; the logged commands."""
    bin_dir, log = tmp_path / "bin", tmp_path / "commands.log"
    bin_dir.mkdir()
    for tool in ("diet-np", "python"):
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> "{log}"\n')
        (bin_dir / tool).chmod(0o755)
    script = README.parent / "benchmarks" / "cpu_cifar10.sh"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    for _ in range(times):
        done = subprocess.run(["sh", str(script), str(tmp_path / "run"), arch], env=env,
                              capture_output=True, text=True, cwd=README.parent)
        assert done.returncode == 0, done.stderr
    return log.read_text().splitlines()


def test_cpu_cifar10_script_runs_under_sh_and_skips_finished_stages(tmp_path):
    """``sh benchmarks/cpu_cifar10.sh RUN vgg16_w4``, as the README writes it; the second
    run finds every stage done."""
    commands = run_cpu_script(tmp_path, "vgg16_w4", times=2)
    assert [c.split()[1] for c in commands] == [
        "train-ann", "evaluate", "convert", "benchmarks/pick_scale.py", "evaluate",
        "finetune", "energy"]
    assert "--arch vgg16_w4 --epochs 30 " in commands[0]
    assert "--lr 3e-4" in commands[-2] and "--epochs 12 --schedule constant" in commands[-2]
    assert commands[-1].split()[4].endswith("diet/checkpoint.npz")


@pytest.mark.parametrize("arch", ["vgg5", "resnet20_w4"])
def test_cpu_cifar10_script_continues_the_diet_run(tmp_path, arch):
    """For ``vgg5`` and ``resnet20_w4`` the script fine-tunes on from the DIET run's
    checkpoint at 1e-4."""
    finetunes = [c for c in run_cpu_script(tmp_path, arch) if c.split()[1] == "finetune"]
    assert len(finetunes) == 2 and "--lr 1e-3" in finetunes[0] and "--lr 1e-4" in finetunes[1]
    assert f"--checkpoint {tmp_path / 'run' / 'diet' / 'checkpoint.npz'} " in finetunes[1]
    assert f"--out {tmp_path / 'run' / 'diet2'} " in finetunes[1]
