"""`fixflow-opt`: parse text IR, run a pass pipeline, print (modelled on mlir-opt)."""

from __future__ import annotations

import argparse
import gc
import re
import sys
from contextlib import contextmanager, nullcontext
from typing import Iterator, Sequence

from ..ir.diagnostics import FixflowError, capture_diagnostics
from .common import ArgumentParser, ToolError, argv_list, read_text, report_error, run_tool, write_output

# as MLIR: one designator per line, `-re` for `{{regex}}` parts, @+N/@-N/@above/@below/@unknown
_EXPECTED = re.compile(r"expected-(error|warning|note|remark)(-re)? *(@[+-]\d+|@above|@below|@unknown)? *"
                       r"\{\{(.*)\}\}\s*$")
_SPLIT = re.compile(r"^// -----.*$", re.M)
# MLIR's debug-printing limits (ir/printer.py DEBUG_ELIDE_*), repeated here to keep --help import-free
_DEBUG_ELEMENTS, _DEBUG_RESOURCES = 16, 64


class _PassFlag(argparse.Action):
    """`--<pass-name>[=options]`: appends the pass to the pipeline in command-line order."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = getattr(namespace, "pass_flags", None) or []
        items.append((self.metavar, values or ""))
        namespace.pass_flags = items


def _build_parser(passes: dict | None) -> argparse.ArgumentParser:
    """The command line; `passes` maps each pass name to its `fixflow.passes.index` entry (summary and
    options as text). `passes=None` gives the quick parser of the common options alone (no --help,
    no abbreviations), which spares loading the pass registry when no pass flag is used."""
    epilog = []
    if passes is not None:
        epilog.append("passes (also usable as --<name>[=\"key=value ...\"], in command-line order):")
        for name, (_module, summary, options) in passes.items():
            epilog.append(f"  {name:<26} {summary}")
            for oname, tname, default, help_ in options:
                epilog.append(f"      {oname}=<{tname}>  (default {default}) {help_}".rstrip())
    p = ArgumentParser(
        prog="fixflow-opt", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Parse fixflow/MLIR generic text IR, run a pass pipeline, and print the result.",
        epilog="\n".join(epilog), add_help=passes is not None, allow_abbrev=passes is not None)
    p.add_argument("input", nargs="?", default="-", help="input file ('-' for stdin)")
    p.add_argument("-o", dest="output", default="-", help="output file (default stdout)")
    p.add_argument("--pass-pipeline", "-p", dest="pipeline", default=None,
                   help='pipeline, e.g. "builtin.module(canonicalize,cse)" or "canonicalize,cse"')
    p.add_argument("--allow-unregistered-dialect", action="store_true",
                   help="keep ops of unknown dialects as opaque generic ops")
    p.add_argument("--split-input-file", action="store_true",
                   help="split the input at '// -----' lines and process each chunk separately")
    p.add_argument("--verify-diagnostics", action="store_true",
                   help="check that the diagnostics match the '// expected-error {{...}}' comments")
    p.add_argument("--no-verify-each", "--verify-each=false", dest="verify_each", action="store_false",
                   help="do not verify the IR after each pass")
    ir = p.add_argument_group(
        "IR printing around passes (to stderr; large data elided: dense elements of more than "
        f"{_DEBUG_ELEMENTS} elements, resource blobs longer than {_DEBUG_RESOURCES} characters, "
        "unless --mlir-elide-* say otherwise or --print-ir-no-elide)")
    ir.add_argument("--print-ir-before", "--mlir-print-ir-before", default="", metavar="PASSES",
                    help="comma-separated pass names")
    ir.add_argument("--print-ir-after", "--mlir-print-ir-after", default="", metavar="PASSES",
                    help="comma-separated pass names")
    ir.add_argument("--print-ir-before-all", "--mlir-print-ir-before-all", action="store_true")
    ir.add_argument("--print-ir-after-all", "--mlir-print-ir-after-all", action="store_true")
    ir.add_argument("--print-ir-after-change", "--mlir-print-ir-after-change", action="store_true",
                    help="with --print-ir-after(-all): print only after passes that changed the IR")
    ir.add_argument("--print-ir-no-elide", action="store_true",
                    help="print the whole IR (every weight) around passes")
    p.add_argument("--mlir-elide-elementsattrs-if-larger", dest="elide_elements", type=int, metavar="N",
                   help="print dense elements of more than N elements as dense_resource<__elided__>")
    p.add_argument("--mlir-elide-resource-strings-if-larger", dest="elide_resources", type=int, metavar="N",
                   help="leave resource blobs longer than N characters out of the dialect_resources section")
    p.add_argument("--timing", "--mlir-timing", dest="timing", action="store_true",
                   help="print an execution time report (as mlir-opt's) to stderr")
    p.add_argument("--mlir-timing-display", dest="timing_display", choices=("tree", "list"), default="tree",
                   help="tree (nested pipelines, default) or list (merged by pass)")
    p.add_argument("--mlir-pass-statistics", dest="statistics", action="store_true",
                   help="print the statistics of each pass to stderr")
    p.add_argument("--mlir-pass-statistics-display", dest="statistics_display", choices=("pipeline", "list"),
                   default="pipeline", help="pipeline (default) or list (summed per pass)")
    p.add_argument("--dump-pass-pipeline", action="store_true", help="print the pipeline that will be run to stderr")
    p.add_argument("--print-debuginfo", "--mlir-print-debuginfo", dest="debuginfo", action="store_true",
                   help="print op locations")
    p.add_argument("--mlir-print-op-generic", action="store_true", help="accepted; output is always generic")
    p.add_argument("--load-pass-plugin", action="append", default=[], metavar="FILE.py",
                   help="load a Python file that registers passes/dialects")
    for name in passes or ():
        p.add_argument(f"--{name}", dest=f"pass_{name}", metavar=name, nargs="?", const="", action=_PassFlag,
                       help=argparse.SUPPRESS)
    return p


def _chunks(text: str, split: bool) -> list[str]:
    if not split:
        return [text]
    out, last = [], 0
    for m in _SPLIT.finditer(text):
        out.append(text[last:m.start()])
        last = m.end()
    out.append(text[last:])
    padded, line = [], 0
    for chunk in out:
        padded.append("\n" * line + chunk)
        line += chunk.count("\n")
    return padded


#: set by `main()` run as the process's command (see `_process`)
_ONE_SHOT = False


@contextmanager
def _ir_kept_to_the_end() -> Iterator[None]:
    """Parse (and verify) with the cycle collector paused, then freeze what was built.

    Used when this process's only job is one command: the parsed IR then lives until the process ends.
    Parsing allocates hundreds of thousands of long-lived objects and next to no cyclic garbage, so the
    collector's passes over them (during parsing, right after it, and at interpreter exit) are wasted.
    Objects frozen here are never collected; garbage that passes make is collected as usual."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _process(chunk: str, filename: str, args: argparse.Namespace, passes) -> str:
    import time

    from ..ir import parse_module, print_module
    w0, u0 = time.perf_counter(), time.process_time()
    with _ir_kept_to_the_end() if _ONE_SHOT else nullcontext():
        module = parse_module(chunk, filename, allow_unregistered=args.allow_unregistered_dialect)
        module.verify()
    parsed = ("Parser", time.perf_counter() - w0, time.process_time() - u0)
    pm = None
    if passes or args.timing or args.statistics or args.dump_pass_pipeline:
        from ..ir.passes import PassManager
        full = args.print_ir_no_elide
        pm = PassManager(passes, verify_each=args.verify_each,
                         print_before=[s for s in args.print_ir_before.split(",") if s],
                         print_after=[s for s in args.print_ir_after.split(",") if s],
                         print_before_all=args.print_ir_before_all, print_after_all=args.print_ir_after_all,
                         print_after_change=args.print_ir_after_change, print_locations=args.debuginfo,
                         print_elide_elements=args.elide_elements if args.elide_elements is not None
                         else None if full else _DEBUG_ELEMENTS,
                         print_elide_resources=args.elide_resources if args.elide_resources is not None
                         else None if full else _DEBUG_RESOURCES)
        if args.dump_pass_pipeline:
            sys.stderr.write(pm.pipeline_dump())
        pm.run(module)
    w1, u1 = time.perf_counter(), time.process_time()
    text = print_module(module, print_locations=args.debuginfo, elide_elements_if_larger=args.elide_elements,
                        elide_resources_if_larger=args.elide_resources)
    if pm is not None and args.statistics:
        sys.stderr.write(pm.statistics_report(args.statistics_display) + "\n")  # mlir-opt: a blank line after
    if pm is not None and args.timing:
        output = ("Output", time.perf_counter() - w1, time.process_time() - u1)
        sys.stderr.write(pm.timing_report(before=[parsed], after=[output], display=args.timing_display,
                                          total=(time.perf_counter() - w0, time.process_time() - u0)))
    return text


def _expectation_matcher(body: str, is_re: bool):
    if not is_re:
        return lambda msg: body in msg
    parts = re.split(r"\{\{(.*?)\}\}", body)  # literal, regex, literal, regex, ...
    try:
        rx = re.compile("".join(re.escape(t) if i % 2 == 0 else f"(?:{t})" for i, t in enumerate(parts)))
    except re.error as e:
        raise ToolError(f"invalid regex in expected-*-re {{{{{body}}}}}: {e}") from None
    return lambda msg: rx.search(msg) is not None


def _check_expectations(chunk: str, produced: list[tuple[str, str | None, int, str]],
                        filename: str) -> list[str]:
    """Match diagnostics (severity, file or None if unknown, line, message) against the chunk's
    `expected-*` designators, with MLIR's rules: @above/@below skip other designator lines."""
    expected: list[list] = []  # [severity, line (None = @unknown), matcher, text, matched, designator line]
    below: list[list] = []
    last_plain = 0
    lines = chunk.split("\n")
    for lineno, line in enumerate(lines, start=1):
        m = _EXPECTED.search(line)
        if m is None:
            for e in below:
                e[1] = lineno
            below.clear()
            last_plain = lineno
            continue
        sev, is_re, offset, body = m.groups()
        e = [sev, lineno, _expectation_matcher(body, bool(is_re)), body, False, lineno]
        if offset == "@above":
            e[1] = last_plain
        elif offset == "@below":
            e[1] = len(lines)
            below.append(e)
        elif offset == "@unknown":
            e[1] = None
        elif offset:
            e[1] = lineno + int(offset[1:])
        expected.append(e)
    problems = []
    for sev, file, line, msg in produced:
        target = None if file is None else (line if file == filename else -1)
        for e in expected:
            if not e[4] and e[0] == sev and e[1] == target and target != -1 and e[2](msg):
                e[4] = True
                break
        else:
            where = f"{file}:{line}" if file is not None else filename
            problems.append(f"{where}: unexpected {sev}: {msg}")
    for sev, _line, _match, body, matched, at in expected:
        if not matched:
            problems.append(f"{filename}:{at}: expected {sev} \"{body}\" was not produced")
    return problems


def _file_line(loc) -> tuple[str | None, int]:
    flc = loc.file_line_col() if loc is not None else None
    return (flc.filename, flc.line) if flc is not None else (None, 0)


def _run_verify_diagnostics(chunks: list[str], filename: str, args, passes_factory) -> int:
    problems: list[str] = []
    for chunk in chunks:
        produced: list[tuple[str, str | None, int, str]] = []
        with capture_diagnostics() as diags:
            try:
                _process(chunk, filename, args, passes_factory())
            except FixflowError as e:
                produced.append(("error", *_file_line(e.location), e.message))
                for msg, loc in e.notes:
                    if loc is not None and loc.file_line_col() is not None:
                        produced.append(("note", *_file_line(loc), msg))
        for d in diags:
            produced.append((d.severity, *_file_line(d.location), d.message))
        problems += _check_expectations(chunk, produced, filename)
    for p in problems:
        sys.stderr.write(p + "\n")
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `fixflow-opt`; returns the exit code. Without `argv` it is the process's command
    (`sys.argv`), which lets it leave the parsed IR to the end of the process (see `_process`)."""
    global _ONE_SHOT
    _ONE_SHOT = argv is None
    try:
        return run_tool(lambda: _main(argv))
    finally:
        _ONE_SHOT = False


def _help_from_index(argv: list[str], plugins: list[str]) -> None:
    """`--help` without loading a pass module: when the passes are the built-in ones alone (no plugin
    file, no installed plugin package), the full parser is built from the static pass index, which
    `tests/passes/test_pass_index.py` keeps equal to the registry. Returns if the help is not printed."""
    if plugins or not any(a in ("-h", "--help") for a in argv):
        return
    from importlib.metadata import entry_points
    if entry_points(group="fixflow.passes"):
        return
    from ..passes.index import PASSES
    _build_parser(dict(sorted(PASSES.items()))).parse_args(argv)  # prints the help and exits


def _parse_command_line(argv: list[str]) -> tuple[argparse.Namespace, dict]:
    """The arguments and the pass classes by name. The registry (every pass module and the dialects
    they use) is only loaded when the command line needs it: pass flags, plugins, or anything the quick
    parser does not take as it is (the full parser then also reports any usage error); --help alone
    reads the static pass index instead."""
    try:
        args, rest = _build_parser(None).parse_known_args(argv)
        if not rest and not args.load_pass_plugin:
            return args, {}
    except ToolError:
        pass
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--load-pass-plugin", action="append", default=[])
    known, _ = pre.parse_known_args(argv)
    _help_from_index(argv, known.load_pass_plugin)
    from ..ir.passes import load_pass_plugin, registered_passes
    from ..passes.index import pass_entry
    for path in known.load_pass_plugin:
        load_pass_plugin(path)
    passes = registered_passes()
    return _build_parser({name: pass_entry(cls) for name, cls in passes.items()}).parse_args(argv), passes


def _main(argv: Sequence[str] | None) -> int:
    argv = argv_list(argv)
    args, passes = _parse_command_line(argv)
    flags = getattr(args, "pass_flags", None) or []
    if args.pipeline and flags:
        raise ToolError("use either --pass-pipeline or individual pass flags, not both")

    def make_passes():
        if args.pipeline:
            from ..ir.passes import parse_pipeline
            return parse_pipeline(args.pipeline)
        return [passes[name].from_option_string(opts) if opts else passes[name]() for name, opts in flags]

    for flag in ("elide_elements", "elide_resources"):
        if getattr(args, flag) is not None and getattr(args, flag) < 0:
            raise ToolError(f"--mlir-{'elide-elementsattrs' if flag == 'elide_elements' else 'elide-resource-strings'}"
                            f"-if-larger needs a number >= 0, got {getattr(args, flag)}")
    make_passes()  # report pipeline errors before reading input
    text = read_text(args.input)
    filename = "<stdin>" if args.input == "-" else args.input
    chunks = _chunks(text, args.split_input_file)
    if args.verify_diagnostics:
        return _run_verify_diagnostics(chunks, filename, args, make_passes)
    if len(chunks) == 1:
        write_output(_process(chunks[0], filename, args, make_passes()), args.output)
        return 0
    outputs, failed = [], False
    for chunk in chunks:  # as mlir-opt: every chunk is processed, and each one's error is reported
        try:
            outputs.append(_process(chunk, filename, args, make_passes()))
        except FixflowError as e:
            report_error(e)
            failed = True
    write_output("// -----\n".join(outputs), args.output)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
