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


def test_training_and_evaluation_on_the_cpu_ask_for_it(monkeypatch, tmp_path):
    from diet_np.architectures import vgg
    from diet_np.data import make_shapes

    calls = []
    monkeypatch.setattr(training, "keep_freed_memory", lambda: calls.append("keep"))
    train_step = training.train_step
    monkeypatch.setattr(training, "train_step",
                        lambda *a, **k: calls.append("step") or train_step(*a, **k))
    data = make_shapes(n_train=20, n_test=10, seed=0)
    net = vgg([4, "A"], [], num_classes=data.num_classes, input_shape=data.x_train.shape[1:])
    params = net.init_params(0)
    training.fit(net, params, data, training.ann_config(epochs=1, batch_size=8), tmp_path,
                 arch={"features": [4, "A"], "classifier": [], "name": "t"}, xp=np,
                 show_progress=False)
    assert calls[0] == "keep"                 # before the first training step
    calls.clear()
    training.evaluate(net, params, data.x_test, data.y_test, data, T=1, mode="ann", xp=np,
                      show_progress=False)
    assert calls
