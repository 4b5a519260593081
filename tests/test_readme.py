"""The README's promises: its Python examples run, its tools exist, its two commands exist."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_starts_with_the_two_commands():
    block = re.search(r"```\n(.*?)```", README, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["bash scripts/main.sh", "bash scripts/test.sh"]
    assert (ROOT / "scripts" / "main.sh").exists() and (ROOT / "scripts" / "test.sh").exists()
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def test_readme_tools_are_installed_console_scripts():
    pyproject = (ROOT / "pyproject.toml").read_text()
    tools = set(re.findall(r"^(fixflow-[a-z]+)\b", README, re.M))
    assert tools
    for tool in tools:
        assert f"{tool} = " in pyproject, tool


@pytest.mark.slow
def test_readme_python_examples_run(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) == 2
    ns: dict = {}
    exec(compile(blocks[0], "README.md:python-1", "exec"), ns)
    accuracy = float(capsys.readouterr().out.strip().splitlines()[-1])
    assert accuracy > 0.95
    exec(compile(blocks[1], "README.md:python-2", "exec"), ns)          # runs as written: no names injected
    assert (tmp_path / "out" / "q" / "quant_info.json").exists()
    assert (tmp_path / "out" / "q" / "DigitsCNN_int.xmodel").exists()


def test_readme_documentation_list_names_existing_pages():
    pages = set(re.findall(r"`(docs/[\w.-]+\.md)`", README))
    assert "docs/migrating-from-vitis-ai.md" in pages and "docs/quantization.md" in pages
    for page in pages:
        assert (ROOT / page).exists(), page


def test_readme_says_which_digits_resolution_load_digits_gives():
    """`load_digits()` is 8x8 unless size= says otherwise: the README's examples ask for the models' 28x28."""
    import inspect

    from fixflow.zoo import load_digits
    assert inspect.signature(load_digits).parameters["size"].default == 8
    assert "`load_digits()` gives the native 8x8 images" in README
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    calls = re.findall(r"load_digits\(([^)]*)\)", "".join(blocks))
    assert calls and all("size=" in c for c in calls), calls
