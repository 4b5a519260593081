"""Differential testing of fixflow's IR text parser against `mlir-opt-22`: seed files, seeded mutants and a
batched mlir-opt runner (one process per few hundred cases, `--split-input-file`).

Both sides only parse: mlir-opt runs with `--mlir-very-unsafe-disable-verifier-on-parsing` (and prints
generically, assuming the IR verified), fixflow with `parse_module(..., allow_unregistered=True)`.
A case fails when mlir-opt rejects a text that fixflow accepts (unless the difference is one of the documented
extensions in docs/reliability.md, see `EXTENSIONS`), or when fixflow raises anything but a FixflowError.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fixflow.ir import parse_module, print_module
from fixflow.ir.diagnostics import FixflowError

MLIR_OPT = shutil.which("mlir-opt-22")
MLIR_FLAGS = ["--allow-unregistered-dialect", "--split-input-file", "--mlir-very-unsafe-disable-verifier-on-parsing",
              "--mlir-print-op-generic", "--mlir-print-assume-verified"]
SPLIT = "// -----"

# ---- seeds: valid files (mlir-opt and fixflow accept all of them) ---------------------------------------
SEEDS = [
    # constants of every builtin element type fixflow stores, in every literal form
    '''"builtin.module"() ({
  "t.consts"() {a = dense<[[1, 2, 3], [4, 5, 6]]> : tensor<2x3xi32>, b = dense<[[1.5, -2.0], [0.25, 3.0e2]]> : tensor<2x2xf32>,
    c = dense<7> : tensor<4x2xi8>, d = dense<"0x0100000002000000"> : tensor<2xi32>, e = dense<[true, false, true]> : tensor<3xi1>,
    f = dense<1.0e-3> : tensor<3xf16>, g = dense<[0x7F800000, 1.0]> : tensor<2xf32>, h = dense<> : tensor<0x3xf64>,
    i = dense<[255, -128, 0x10]> : tensor<3xi8>, j = dense<[[[1]], [[2]]]> : tensor<2x1x1xui16>, k = dense<-5> : tensor<si64>} : () -> ()
  "t.scalars"() {a = 300 : i16, b = -129 : i32, c = 255 : ui8, d = 1.0e6 : f32, e = 6.5e4 : f16, f = 0x7C00 : f16, g = 42,
    h = 1.5, i = true, j = 1 : i1, k = 0 : index, l = 9223372036854775807 : i64, m = -0x10 : i8, n = 1.0e-300 : f64} : () -> ()
  "t.arrays"() {a = array<i8: 1, -2, 127>, b = array<i64: 9223372036854775807>, c = array<f32: 1.5, 0x7F800000>,
    d = array<i1: true, false>, e = array<i16>, f = array<f64: -2.5e10>, g = array<ui8: 200>} : () -> ()
  "t.strings"() {a = "plain", b = "tab\\09 quote\\" back\\\\ nl\\n \\t", c = "\\FF\\00", d = @sym, e = @"quoted sym"::@inner} : () -> ()
}) : () -> ()
''',
    # resources, aliases, locations, nested attributes, types
    '''#map = affine_map<(d0) -> (d0)>
!t8 = tensor<8xi8>
#loc0 = loc("input.mlir":3:7)
"builtin.module"() ({
  %0 = "t.res"() {w = dense_resource<blob1> : tensor<2x2xf32>, v = dense_resource<"k 2"> : !t8} : () -> tensor<2x2xf32> loc(#loc0)
  %1:2 = "t.pair"(%0) {m = #map, d = {x = [1, 2.5, "s", unit, [dense<1> : tensor<2xi64>]], y = #t.attr<"p">}} : (tensor<2x2xf32>) -> (i32, !t.ty<4>)
  "t.use"(%1#0, %1#1) : (i32, !t.ty<4>) -> () loc(fused["a.mlir":1:2, callsite("f" at "g":3:4)])
  "t.named"() : () -> () loc("name"("inner":5:6))
}) : () -> ()
{-#
  dialect_resources: {
    builtin: {
      blob1: "0x040000000000803F000000400000404000008040",
      "k 2": "0x040000000102030405060708"
    }
  }
#-}
''',
    # registered ops (func, arith), regions, blocks, successors
    '''"builtin.module"() ({
  "func.func"() ({
  ^bb0(%arg0: i32, %arg1: i32):
    %0 = "arith.addi"(%arg0, %arg1) : (i32, i32) -> i32
    %1 = "arith.constant"() {value = 7 : i32} : () -> i32
    %2 = "arith.muli"(%0, %1) : (i32, i32) -> i32
    "t.br"(%2)[^bb1] : (i32) -> ()
  ^bb1:
    %c = "arith.constant"() {value = dense<[1.0, 2.0]> : tensor<2xf32>} : () -> tensor<2xf32>
    "func.return"(%2) : (i32) -> ()
  }) {function_type = (i32, i32) -> i32, sym_name = "main"} : () -> ()
}) : () -> ()
''',
    # what mlir-opt prints with --mlir-print-debuginfo: properties, #loc aliases after their uses, block
    # argument locations; typed strings, nested symbols, external resources
    '''!v4 = tensor<4xf32>
"builtin.module"() ({
  "func.func"() ({
  ^bb0(%arg0: !v4 loc("in.py":1:1), %arg1: i8 loc("in.py":1:9)):
    %0 = "arith.constant"() {value = dense<[1.0, -0.5, 2.5e-3, 0x7FC00000]> : !v4} : () -> !v4 loc(#loc1)
    %1 = "t.addf"(%arg0, %0) <{fastmath = #t.fastmath<none>}> : (!v4, !v4) -> !v4 loc(#loc2)
    "t.meta"() {s = "typed" : i32, r = @outer::@inner::@leaf, n = -0x7F : i8, z = dense<0> : tensor<0x4xi1>} : () -> () loc(#loc3)
    "func.return"(%1) : (!v4) -> () loc(#loc1)
  }) {function_type = (!v4, i8) -> !v4, sym_name = "g", sym_visibility = "private"} : () -> () loc(#loc)
}) : () -> () loc(#loc)
#loc = loc("in.py":0:0)
#loc1 = loc("in.py":2:5 to 2:9)
#loc2 = loc("add"(#loc1))
#loc3 = loc(fused<"meta">[#loc1, #loc2])
{-#
  external_resources: {
    mlir_reproducer: {
      pipeline: "builtin.module(canonicalize)",
      disable_threading: true
    }
  }
#-}
''',
    # many ops on one line and a fixed-point-free graph-like body
    '''"builtin.module"() ({ %a = "t.a"() : () -> tensor<1x3x4x4xf32> %b = "t.conv"(%a) {stride = array<i64: 1, 1>, pad = [0, 1], w = dense<0.5> : tensor<2x3x1x1xf32>} : (tensor<1x3x4x4xf32>) -> tensor<1x2x4x4xf32> "t.ret"(%b) : (tensor<1x2x4x4xf32>) -> () }) : () -> ()
''',
]

# ---- mutations ----------------------------------------------------------------------------------------------
_NUM = re.compile(r"(?<![A-Za-z0-9_%#^.$@!])-?(?:0x[0-9A-Fa-f]+|\d+\.\d*(?:[eE][-+]?\d+)?|\d+)(?![A-Za-z0-9_])")
_TYPE = re.compile(r"\b(?:[su]?i\d+|f16|bf16|f32|f64|index)\b")
_DIM = re.compile(r"(?<=[<x])(\d+|\?)(?=x)")
_HEXSTR = re.compile(r'"0x[0-9A-Fa-f]*"')
_NAME = re.compile(r"[%^@#!][A-Za-z0-9_$.-]+")
_STR = re.compile(r'"(?:[^"\\\n]|\\.)*"')

NUMBERS = ["300", "-129", "255", "256", "-1", "0", "128", "65536", "2147483648", "-2147483649", "4294967296",
           "9223372036854775808", "18446744073709551615", "18446744073709551616", "-9223372036854775809",
           "1e400", "1.0e400", "-1.0e309", "1.0e6", "6.6e4", "1.0e39", "3.5e38", "1.0e-400", "0x7F800000", "0x7C00",
           "0x1FFFFFFFFF", "0xFFFFFFFFFFFFFFFFF", "-0x10", "-0x3F800000", "1.5", "1.", ".5", "+1", "inf", "nan", "1e5",
           "0x", "007", "1" * 4400, "-" + "9" * 4500, "2.", "1.0E5", "1.5e", "0X10", "true", "false"]
TYPES = ["i1", "i8", "i0", "i3", "si8", "ui8", "ui1", "i16", "i64", "i99999999", "i16777216", "i16777215", "f16", "bf16",
         "f32", "f64", "index", "none", "f8E4M3FN", "i128", "si1", "ui64", "tf32"]
DIMS = ["0", "1", "3", "7", "?", "99999999999999999999", "9223372036854775808", "-1", "01", "2x2"]
ESCAPES = ["\\q", "\\x41", "\\0", "\\0g", "\\u1234", "\\r", "\\'", "\\0A", "\\\\", "\\\"", "\\n", "\\t", "\\FF", "\\",
           "\\\n", "\\ ", "\\00"]
PUNCT = list("{}[]()<>,:=%^#!\"@-x.?* ")
NAME_SUFFIXES = ["1a", "0x", "a-1", "-a", "1", "$", ".x", "9", "_", "a b", "", "01"]


def _replace(text: str, m: re.Match, new: str) -> str:
    return text[:m.start()] + new + text[m.end():]


def _pick(rng: random.Random, regex: re.Pattern, text: str) -> re.Match | None:
    found = list(regex.finditer(text))
    return rng.choice(found) if found else None


def mutate(text: str, rng: random.Random) -> str:
    """One random edit aimed at the classes MLIR validates (numbers, types, shapes, literal structure, hex
    blobs, escapes), or a generic character edit."""
    kind = rng.choice(["num", "num", "num", "type", "type", "dim", "bracket", "bracket", "hex", "hex", "escape",
                       "escape", "name", "char", "char", "swap"])
    if kind == "name" and (m := _pick(rng, _NAME, text)):
        return _replace(text, m, m.group(0)[0] + rng.choice(NAME_SUFFIXES))
    if kind == "num" and (m := _pick(rng, _NUM, text)):
        return _replace(text, m, rng.choice(NUMBERS))
    if kind == "type" and (m := _pick(rng, _TYPE, text)):
        return _replace(text, m, rng.choice(TYPES))
    if kind == "dim" and (m := _pick(rng, _DIM, text)):
        return _replace(text, m, rng.choice(DIMS))
    if kind == "bracket":
        spots = [i for i, c in enumerate(text) if c in "[],"]
        if spots:
            i = rng.choice(spots)
            op = rng.randrange(3)
            if op == 0:
                return text[:i] + text[i + 1:]
            if op == 1:
                return text[:i] + text[i] + text[i:]
            return text[:i] + rng.choice("[],") + text[i + 1:]
    if kind == "hex" and (m := _pick(rng, _HEXSTR, text)):
        body = m.group(0)[3:-1]
        op = rng.randrange(6)
        if op == 0 and body:
            j = rng.randrange(len(body))
            body = body[:j] + body[j + 1:]
        elif op == 1:
            j = rng.randrange(len(body) + 1)
            body = body[:j] + rng.choice("gZ _-x") + body[j:]
        elif op == 2:
            body = body[:rng.choice([0, 2, 6, 8])]
        elif op == 3:
            return _replace(text, m, '"0X' + body + '"')
        elif op == 4:
            body = body + rng.choice(["00", "0", "0000", "FF"])
        else:
            return _replace(text, m, '"' + body + '"')
        return _replace(text, m, '"0x' + body + '"')
    if kind == "escape" and (m := _pick(rng, _STR, text)):
        s = m.group(0)
        j = rng.randrange(1, len(s))
        return text[:m.start() + j] + rng.choice(ESCAPES) + text[m.start() + j:]
    if kind == "swap":
        toks = list(re.finditer(r"\S+", text))
        if len(toks) > 2:
            k = rng.randrange(len(toks) - 1)
            a, b = toks[k], toks[k + 1]
            return text[:a.start()] + b.group(0) + text[a.end():b.start()] + a.group(0) + text[b.end():]
    i = rng.randrange(len(text))
    op = rng.randrange(3)
    if op == 0:
        return text[:i] + text[i + 1:]
    if op == 1:
        return text[:i] + rng.choice(PUNCT) + text[i:]
    return text[:i] + rng.choice(PUNCT) + text[i + 1:]


def mutants(seeds: list[str], n: int, seed: int) -> list[str]:
    """`n` mutants (one to three edits each) of the seed texts, reproducible from `seed`."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        text = rng.choice(seeds)
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            text = mutate(text, rng)
        if SPLIT not in text:
            out.append(text)
    return out


# ---- running both sides -------------------------------------------------------------------------------------
def fixflow_verdict(text: str) -> tuple[str, str]:
    """('accept' | 'reject' | 'crash', detail); for 'accept' the detail is fixflow's printed text."""
    try:
        module = parse_module(text, "mutant.mlir", allow_unregistered=True)
    except FixflowError as e:
        return "reject", e.message
    except Exception as e:  # noqa: BLE001 - any other exception is the bug this test looks for
        return "crash", f"{type(e).__name__}: {e}"
    try:
        return "accept", print_module(module)
    except Exception as e:  # noqa: BLE001
        return "crash", f"printing: {type(e).__name__}: {e}"


def _run_batch(texts: list[str], workdir: Path) -> list[tuple[str, str]] | None:
    """mlir-opt's (verdict, generic print) per text, or None when mlir-opt crashed on the batch."""
    path = workdir / "batch.mlir"
    path.write_text(f"\n{SPLIT}\n".join(texts))
    proc = subprocess.run([MLIR_OPT, *MLIR_FLAGS, str(path), "-o", "-"], capture_output=True, text=True,
                          errors="replace", timeout=300)
    if proc.returncode not in (0, 1) or "PLEASE submit a bug report" in proc.stderr:
        return None
    sections = proc.stdout.split(f"{SPLIT}\n")
    if len(sections) != len(texts):
        return None
    return [("accept", s) if s.strip() else ("reject", "") for s in sections]


# mlir-opt 22 aborts on `array<T: ...>` whose T is neither an integer nor a float (getIntOrFloatBitWidth on
# index, none, dialect or shaped types); such texts are not sent to it (fixflow rejects them, see the tests)
KNOWN_MLIR_CRASH = re.compile(r"array<\s*(?:index|none|[!(]|tensor|vector|memref|complex)")
BATCH = 250


def mlir_verdicts(texts: list[str]) -> list[str]:
    """mlir-opt's verdict per text ('accept', 'reject' or 'crash'), in few processes (BATCH texts each)."""
    return [v for v, _ in mlir_results(texts)]


def mlir_results(texts: list[str]) -> list[tuple[str, str]]:
    """mlir-opt's (verdict, generic print without locations) per text."""
    verdicts: list = [("crash", "") if KNOWN_MLIR_CRASH.search(t) else None for t in texts]
    todo = [i for i, v in enumerate(verdicts) if v is None]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)

        def run(chunk: list[str]) -> list[tuple[str, str]]:
            got = _run_batch(chunk, work)
            if got is not None:
                return got
            if len(chunk) == 1:
                return [("crash", "")]
            half = len(chunk) // 2
            return run(chunk[:half]) + run(chunk[half:])

        for k in range(0, len(todo), BATCH):
            idx = todo[k:k + BATCH]
            for i, v in zip(idx, run([texts[i] for i in idx])):
                verdicts[i] = v
    return verdicts


# Differences that are documented in docs/reliability.md ("IR text: extensions"). Each maps a text to a
# normalized text without the extension; the difference is the extension's when mlir-opt accepts the normalized
# text (and fixflow still accepts it).
_AFFINE = re.compile(r"\b(affine_map|affine_set|strided)<(?:->|[^<>\n]|<(?:->|[^<>\n])*>)*>")


def _normalize_affine(text: str) -> str:
    return _AFFINE.sub(lambda m: {"affine_map": "affine_map<(d0) -> (d0)>", "affine_set": "affine_set<(d0) : (d0 >= 0)>",
                                  "strided": "strided<[1]>"}[m.group(1)], text)


EXTENSIONS: list[tuple[str, callable]] = [
    ("affine_map / affine_set / strided bodies are kept as text, not validated", _normalize_affine),
]


@dataclass
class Report:
    tried: int = 0
    both_accept: int = 0
    both_reject: int = 0
    only_mlir_rejects: int = 0  # failures unless an extension
    only_fixflow_rejects: int = 0  # fixflow stricter (allowed)
    fixflow_crashes: int = 0
    mlir_crashes: int = 0
    extensions: int = 0
    printed_rejected: int = 0  # fixflow's print of a text both accept is rejected by mlir-opt
    values_differ: int = 0  # mlir-opt prints fixflow's print of a text differently from the text itself
    failures: list[tuple[str, str]] = None

    def summary(self) -> str:
        return (f"{self.tried} mutants: both accept {self.both_accept}, both reject {self.both_reject}, only fixflow "
                f"rejects {self.only_fixflow_rejects}, mlir-opt crashed {self.mlir_crashes}, documented extensions "
                f"{self.extensions}, FAILURES {len(self.failures)} (fixflow accepts what mlir-opt rejects: "
                f"{self.only_mlir_rejects}, fixflow crashes: {self.fixflow_crashes}, fixflow prints text mlir-opt "
                f"rejects: {self.printed_rejected}, fixflow's print means something else to mlir-opt: "
                f"{self.values_differ})")


def _extension_of(texts: list[str]) -> list[str | None]:
    """Per text (each accepted by fixflow, rejected by mlir-opt): the documented extension explaining it."""
    found: list[str | None] = [None] * len(texts)
    for reason, normalize in EXTENSIONS:
        idx = [i for i, t in enumerate(texts) if found[i] is None and normalize(t) != t]
        normalized = [normalize(texts[i]) for i in idx]
        for i, n, v in zip(idx, normalized, mlir_verdicts(normalized)):
            if v == "accept" and fixflow_verdict(n)[0] == "accept":
                found[i] = reason
    return found


def differential(texts: list[str]) -> Report:
    rep = Report(failures=[])
    results = mlir_results(texts)
    mlir = [v for v, _ in results]
    fixflow = [fixflow_verdict(t) for t in texts]
    suspects = [i for i, (mv, (fv, _)) in enumerate(zip(mlir, fixflow)) if mv == "reject" and fv == "accept"]
    explained = dict(zip(suspects, _extension_of([texts[i] for i in suspects])))
    for i, (text, mv) in enumerate(zip(texts, mlir)):
        rep.tried += 1
        fv, detail = fixflow[i]
        if fv == "crash":
            rep.fixflow_crashes += 1
            rep.failures.append((text, "fixflow crashed: " + detail))
            continue
        if mv == "crash":
            rep.mlir_crashes += 1
        elif mv == "reject" and fv == "accept":
            if explained.get(i) is not None:
                rep.extensions += 1
            else:
                rep.only_mlir_rejects += 1
                rep.failures.append((text, "mlir-opt rejects, fixflow accepts"))
        elif mv == "reject":
            rep.both_reject += 1
        elif fv == "reject":
            rep.only_fixflow_rejects += 1
        else:
            rep.both_accept += 1
    both = [i for i, (mv, (fv, _)) in enumerate(zip(mlir, fixflow)) if mv == "accept" and fv == "accept"]
    for i, (v, out) in zip(both, mlir_results([fixflow[i][1] for i in both])):
        if v == "reject":
            rep.printed_rejected += 1
            rep.failures.append((texts[i], "mlir-opt rejects fixflow's print of it:\n" + fixflow[i][1]))
        elif v == "accept" and _normalized(out) != _normalized(results[i][1]):
            rep.values_differ += 1
            rep.failures.append((texts[i], "mlir-opt reads fixflow's print of it differently:\n" +
                                 _first_difference(results[i][1], out)))
    return rep


# a splat of a zero-element tensor: mlir-opt keeps the value, fixflow prints `dense<>` (no elements either way)
_ZERO_SPLAT = re.compile(r"dense<[^<>]*>(?= : tensor<(?:\d+x)*0x)")


_PROPS_LINE = re.compile(r'^(\s*(?:%\S+ = )?"[^"]*"\([^()]*\)) <\{(.*?)\}>(?: \{(.*)\})? : (\([^()]*\) -> .*)$')


def _split_top(body: str) -> list[str]:
    """`a = 1, b = [2, 3]` -> its top-level comma-separated entries."""
    out, depth, start, in_str, i = [], 0, 0, False, 0
    while i < len(body):
        c = body[i]
        if in_str:
            if c == "\\":
                i += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c in "([{<":
            depth += 1
        elif c in ")]}>" and not (c == ">" and body[i - 1] == "-"):
            depth -= 1
        elif c == "," and depth == 0:
            out.append(body[start:i].strip())
            start = i + 1
        i += 1
    out.append(body[start:].strip())
    return [e for e in out if e]


def _without_external_resources(text: str) -> str:
    """fixflow reads `external_resources` (e.g. mlir_reproducer settings) and does not print them."""
    start = text.find("external_resources: {")
    if start < 0:
        return text
    depth, end = 0, len(text)
    for m in re.finditer(r'"(?:[^"\\\n]|\\.)*"|[{}]', text[start:]):
        depth += {"{": 1, "}": -1}.get(m.group(0), 0)
        if depth == 0 and m.group(0) == "}":
            end = start + m.end()
            break
    text = text[:start].rstrip().rstrip(",") + text[end:]
    return re.sub(r"\{-#\s*#-\}\s*", "", text)


def _normalized(mlir_print: str) -> str:
    """mlir-opt's print with the two representation differences fixflow documents folded away: properties
    `<{...}>` of unregistered ops are attributes in fixflow (one dictionary per op, printed `{...}`), and a
    zero-element splat prints as `dense<>`."""
    lines = []
    for line in _ZERO_SPLAT.sub("dense<>", _without_external_resources(mlir_print)).rstrip().splitlines():
        m = _PROPS_LINE.match(line)
        if m:
            entries = sorted(_split_top(m.group(2)) + _split_top(m.group(3) or ""))
            line = f"{m.group(1)} {{{', '.join(entries)}}} : {m.group(4)}"
        else:
            m = re.match(r"^(.*\)) \{(.*)\} : (\([^()]*\) -> .*)$", line)
            if m and '"' in m.group(1):
                line = f"{m.group(1)} {{{', '.join(sorted(_split_top(m.group(2))))}}} : {m.group(3)}"
        lines.append(line)
    return "\n".join(lines)


def _first_difference(a: str, b: str) -> str:
    for la, lb in zip(_normalized(a).splitlines(), _normalized(b).splitlines()):
        if la != lb:
            return f"mlir-opt, original: {la.strip()}\nmlir-opt, fixflow's print: {lb.strip()}"
    return "(different number of lines)"
