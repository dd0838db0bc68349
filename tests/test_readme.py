"""The README's promises: two set-up commands, CI runs the test one, the API example runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def code_blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def setup_commands():
    section = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S)]


def test_exactly_two_setup_commands_one_runs_the_job_one_the_tests():
    run, test = setup_commands()
    assert run.endswith("pipenaut run") and "pip install" in run
    assert "[test]" in test and "pytest" in test


def test_ci_runs_the_readme_test_command():
    _, test = setup_commands()
    assert test in (ROOT / ".ci" / "run").read_text().splitlines()


def test_python_api_example_runs(tmp_path, monkeypatch, capsys):
    (example,) = code_blocks("python")
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "worker 0: 0F0 0F1 0F2 0F3 0B0 0F4" in out
    assert "33.0 0.2727" in out and "[4, 3, 2, 1]" in out
    assert out.splitlines()[-1] == "27.0"
    assert (tmp_path / "traces" / "api.json").exists()
