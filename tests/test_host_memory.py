"""diet_np.fast.host_memory: glibc keeps what a step frees, so the next step takes no new
pages; the command line applies it (diet_np.engine.apply_process_settings)."""
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from diet_np import engine, settings, training
from diet_np.fast import host_memory

ROOT = Path(__file__).resolve().parent.parent


def _faults_of_a_second_step(keep: bool) -> int:
    """Page faults of allocating and filling 64 MiB again after freeing it, in a
    fresh process (the malloc setting is process-wide)."""
    code = textwrap.dedent(f"""
        import resource, numpy as np
        from diet_np.fast import host_memory
        np._core.multiarray._set_madvise_hugepage(False)   # count 4 KiB pages
        if {keep}:
            assert host_memory.keep_freed_memory()
        def step():
            a = np.empty(1 << 24, np.float32)
            a.fill(1.0)
            return float(a[-1])
        step()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        step()
        print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_memory_is_reused_without_page_faults():
    default, kept = _faults_of_a_second_step(False), _faults_of_a_second_step(True)
    assert default > 10_000          # 64 MiB in fresh 4 KiB pages
    assert kept < 100


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv(settings.KEEP_MEMORY, "0")
    monkeypatch.setattr(host_memory, "_set_glibc", lambda: pytest.fail("malloc was changed"))
    assert host_memory.keep_freed_memory() is False
    assert engine.apply_process_settings() is False


def test_bad_setting_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(settings.KEEP_MEMORY, "yes")
    with pytest.raises(ValueError, match="DIET_NP_KEEP_MEMORY must be 0 or 1; got 'yes'"):
        engine.apply_process_settings()


def test_the_stable_name_is_the_fast_one():
    from diet_np.host_memory import keep_freed_memory

    assert keep_freed_memory is host_memory.keep_freed_memory


def test_the_command_line_sets_it_before_any_work(monkeypatch):
    """malloc is process-wide: the CLI entry point sets it, the library never does."""
    from diet_np import cli

    calls = []
    monkeypatch.setattr(cli, "apply_process_settings", lambda: calls.append("keep"))
    monkeypatch.setitem(cli.COMMANDS, "energy", lambda args, explicit: calls.append("command"))
    assert cli.main(["energy", "--arch", "vgg5"]) == 0
    assert calls == ["keep", "command"]
    assert "keep_freed_memory" not in vars(training)
