"""lit configuration for the text-in/text-out pass corpus (run by test_filecheck.py, or by hand:
`lit -v tests/filecheck`). `fixflow-opt` and `filecheck` run under the Python that runs lit."""

import os
import shlex
import sys
import tempfile

import lit.formats

config.name = "fixflow"  # noqa: F821 (lit provides `config`)
config.test_format = lit.formats.ShTest(execute_external=False)  # noqa: F821
config.suffixes = [".mlir"]  # noqa: F821
config.test_source_root = os.path.dirname(__file__)  # noqa: F821
config.test_exec_root = os.path.join(tempfile.gettempdir(), "fixflow-lit")  # noqa: F821 (no Output/ in the tree)
config.environment["PATH"] = os.environ.get("PATH", "")  # noqa: F821
_py = shlex.quote(sys.executable)
config.substitutions.append((r"(?<![\w/.-])fixflow-opt(?![\w/.-])", f"{_py} -m fixflow.tools.opt"))  # noqa: F821
config.substitutions.append((r"(?<![\w/.-])filecheck(?![\w/.-])", f"{_py} -m filecheck"))  # noqa: F821
