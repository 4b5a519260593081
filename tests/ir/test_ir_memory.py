"""Memory bound: parsing (and printing) a 100k-op module stays under 300 MB peak RSS, measured in a fresh
process with `ru_maxrss`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


SCRIPT = r"""
import resource, sys
sys.path.insert(0, {bench!r})
from gen import addi_chain
from fixflow.ir import parse_module, print_module
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
text = addi_chain(100_000)
m = parse_module(text)
assert len(m.body.first_op.body) == 100_001
out = print_module(m)
assert out == text
print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


# Linux carries the peak RSS of the process that spawns (vfork + exec) into the new process's ru_maxrss, so a
# child of this (large) pytest process would start with pytest's peak: a small launcher process spawns it.
LAUNCHER = "import subprocess, sys; sys.exit(subprocess.call([sys.executable, '-c', sys.argv[1]]))"


def test_100k_op_module_peak_rss_under_300mb():
    bench = str(Path(__file__).resolve().parents[2] / "benchmarks")
    proc = subprocess.run([sys.executable, "-c", LAUNCHER, SCRIPT.format(bench=bench)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    before_kb, peak_kb = map(int, proc.stdout.split())  # Linux reports ru_maxrss in KiB
    assert peak_kb > before_kb  # the measurement sees the module
    assert peak_kb < 300 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB"
