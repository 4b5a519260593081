"""The static pass index (`fixflow.passes.index`) equals the registry, and `fixflow-opt --help` built
from it is the help built from the registry, without importing a pass module."""

from __future__ import annotations

import subprocess
import sys

from fixflow.ir.passes import _PASSES, register_pass, registered_passes
from fixflow.passes import PASS_MODULES
from fixflow.passes.index import PASSES, index_from_registry, pass_entry, render
from fixflow.tools.opt import _build_parser

REGENERATE = "the pass index is out of date: run `python -m fixflow.passes.index`"


def test_index_equals_the_registry():
    assert PASSES == index_from_registry(), REGENERATE


def test_every_built_in_pass_is_indexed_with_a_listed_module():
    builtin = {n for n, c in registered_passes().items() if c.__module__.startswith("fixflow.passes.")}
    assert builtin == set(PASSES)
    assert {module for module, _, _ in PASSES.values()} <= set(PASS_MODULES)


def test_render_round_trips():
    namespace: dict = {"Entry": tuple}
    exec(render(PASSES), namespace)
    assert namespace["PASSES"] == PASSES


def test_a_changed_pass_is_detected():
    cls = registered_passes()["canonicalize"]
    entry = pass_entry(cls)
    changed = type("Changed", (cls,), {"SUMMARY": cls.SUMMARY + " (changed)", "__module__": cls.__module__})
    assert pass_entry(changed) != entry
    assert pass_entry(changed)[1:] != PASSES["canonicalize"][1:]


def test_plugin_passes_are_not_indexed():
    class _OutsidePass(registered_passes()["cse"]):
        NAME = "index-test-outside-pass"
    register_pass(_OutsidePass)
    try:
        assert "index-test-outside-pass" in registered_passes()
        assert "index-test-outside-pass" not in index_from_registry()
    finally:
        del _PASSES["index-test-outside-pass"]


def test_help_from_the_index_is_the_registry_help_and_loads_no_pass_module():
    code = ("import sys\nfrom fixflow.tools.opt import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('MODULES', sorted(m for m in sys.modules if m.startswith(('fixflow.passes.', 'fixflow.ir.passes',"
            " 'fixflow.dialects.'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    help_text, _, modules = done.stdout.rpartition("MODULES ")
    assert modules.strip() == "['fixflow.passes.index']"
    full = _build_parser({name: pass_entry(cls) for name, cls in registered_passes().items()
                          if cls.__module__.startswith("fixflow.passes.")})
    assert help_text == full.format_help()
