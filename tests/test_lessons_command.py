"""``diet-np lessons``: listing the shipped lessons and copying them, never overwriting."""
import pytest

import diet_np.lessons as lessons
from diet_np.cli import main
from diet_np.errors import RunError


def test_list_names_every_lesson_with_its_title(capsys):
    assert main(["lessons", "--list"]) == 0
    out = capsys.readouterr().out
    assert len(lessons.lesson_files()) == 10
    for path in lessons.lesson_files():
        assert f"{path.name}" in out and lessons.lesson_title(path) in out
    assert "Lesson 1: one leaky integrate-and-fire neuron" in out


def test_copy_writes_the_lessons_and_their_readme(tmp_path, capsys):
    dest = tmp_path / "new" / "folder"
    assert main(["lessons", "--copy", str(dest)]) == 0
    names = sorted(p.name for p in dest.iterdir())
    assert names == sorted([p.name for p in lessons.lesson_files()] + ["README.md"])
    first = lessons.lesson_files()[0]
    assert (dest / first.name).read_bytes() == first.read_bytes()
    assert f"copied 11 files to {dest}" in capsys.readouterr().out


def test_copy_refuses_to_overwrite_and_copies_nothing(tmp_path, capsys):
    (tmp_path / "03_bptt_by_hand.py").write_text("my own edits")
    assert main(["lessons", "--copy", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "refusing to overwrite 1 existing file(s)" in err and "03_bptt_by_hand.py" in err
    assert (tmp_path / "03_bptt_by_hand.py").read_text() == "my own edits"
    assert [p.name for p in tmp_path.iterdir()] == ["03_bptt_by_hand.py"]


def test_copy_refuses_a_file_as_destination(tmp_path, capsys):
    target = tmp_path / "a_file"
    target.write_text("x")
    assert main(["lessons", "--copy", str(target)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_lessons_needs_list_or_copy():
    with pytest.raises(SystemExit) as exc:
        main(["lessons"])
    assert exc.value.code == 2


def test_an_installed_package_uses_its_packaged_copy(tmp_path, monkeypatch):
    (tmp_path / "01_only.py").write_text("# %% [markdown]\n# # Lesson 1: packaged\n")
    monkeypatch.setattr(lessons, "PACKAGED", tmp_path)
    assert lessons.lesson_dir() == tmp_path
    assert [p.name for p in lessons.lesson_files()] == ["01_only.py"]
    monkeypatch.setattr(lessons, "PACKAGED", tmp_path / "absent")
    monkeypatch.setattr(lessons, "CHECKOUT", tmp_path / "absent too")
    with pytest.raises(RunError, match="no lessons found"):
        lessons.lesson_dir()
