"""Shared helpers of fixflow's command-line tools.

Every tool's `main(argv=None) -> int` can be written as::

    def main(argv=None) -> int:
        return run_tool(lambda: _main(argv))     # user errors -> "error: ..." on stderr, exit code 1

    def _main(argv):
        args = ArgumentParser(prog="fixflow-foo").parse_args(argv)   # bad usage -> ToolError, not exit 2
        module = load_ir(args.input)                                   # '-' = stdin; parse + verify
        write_output(print_module(module), args.output)               # None or '-' = stdout

User errors are `FixflowError`s (and the zoo's `ZooError`, `OSError`): `run_tool` prints them as one
line `file:line:col: error: message` (or `error: message`) and returns 1. Unexpected exceptions are
bugs: they are reported the same way with "internal error" and the raising source line, never as a
traceback. `KeyboardInterrupt` returns 130.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from typing import IO, Any, Callable, Sequence

from fixflow.ir.diagnostics import FixflowError, format_diagnostic

__all__ = ["ToolError", "ArgumentParser", "error_line", "report_error", "run_tool", "read_text", "read_bytes",
           "write_output", "load_ir", "parse_shape", "argv_list"]


class ToolError(FixflowError):
    """A usage or I/O error of a command-line tool (bad arguments, unreadable file, ...)."""


class ArgumentParser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` whose usage errors raise `ToolError` (printed as `error: ...`, exit 1)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ToolError(f"{message} (see {self.prog} --help)")


def error_line(err: BaseException) -> str:
    """One line describing a user error: `file:line:col: error: message` or `error: message`."""
    if isinstance(err, FixflowError):
        message = " ".join(str(err.message).split("\n"))
        return format_diagnostic(err.severity, message, err.location).splitlines()[0]
    if isinstance(err, OSError):
        where = f"{err.filename}: " if err.filename else ""
        return f"error: {where}{err.strerror or err}"
    return "error: " + " ".join(str(err).split("\n"))


def report_error(err: BaseException, stream: IO[str] | None = None) -> None:
    """Print the error to `stream` (default stderr): `error_line(err)`, followed, for errors in text the
    tool has read, by the source line and a caret (as mlir-opt does)."""
    text = error_line(err)
    if isinstance(err, FixflowError) and "\n" not in str(err.message):
        text = err.render()
    print(text, file=stream or sys.stderr)


def _user_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [FixflowError, OSError]
    try:
        from fixflow.zoo.errors import ZooError
        errors.append(ZooError)
    except ImportError:  # pragma: no cover - the zoo is part of the package
        pass
    return tuple(errors)


def _format_warning(message: Any, category: type[Warning], filename: str, lineno: int, line: str | None = None) -> str:
    """A Python warning as one `warning: ...` line: numpy's RuntimeWarnings name no place in the user's
    input, and the library source line Python would print means nothing to the user."""
    return f"warning: {' '.join(str(message).split())} ({category.__name__})\n"


def run_tool(body: Callable[[], int | None], stream: IO[str] | None = None) -> int:
    """Run a tool's body and turn every exception into one `error: ...` line and exit code 1.

    `body` returns the exit code (None = 0). `SystemExit` (e.g. from `--help`) passes its code through.
    """
    stream = stream or sys.stderr
    saved_format = warnings.formatwarning
    warnings.formatwarning = _format_warning
    try:
        code = body()
        return 0 if code is None else int(code)
    except SystemExit as e:  # first: `--help` ends here without importing the zoo's errors
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except _user_errors() as e:
        report_error(e, stream)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=stream)
        return 130
    except Exception as e:  # noqa: BLE001 - a bug: still no traceback for the user
        frames = traceback.extract_tb(e.__traceback__)
        where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
        msg = " ".join(str(e).split("\n"))
        print(f"error: internal error: {type(e).__name__}: {msg}{where}; please report this bug", file=stream)
        return 1
    finally:
        warnings.formatwarning = saved_format


def read_text(path: str) -> str:
    """The text of `path` ('-' = stdin); `ToolError` if it cannot be read."""
    if path == "-":
        buffer = getattr(sys.stdin, "buffer", None)
        try:
            return buffer.read().decode("utf-8") if buffer is not None else sys.stdin.read()
        except UnicodeDecodeError as e:
            raise ToolError(f"cannot read '<stdin>': {e}") from None
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ToolError(f"cannot read '{path}': {getattr(e, 'strerror', None) or e}") from None


def read_bytes(path: str) -> bytes:
    """The bytes of `path` ('-' = stdin); `ToolError` if it cannot be read."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ToolError(f"cannot read '{path}': {e.strerror or e}") from None


def write_output(data: str | bytes, path: str | None = None) -> None:
    """Write `data` to `path`, or to stdout when `path` is None or '-'; `ToolError` if it cannot be written."""
    if path is None or path == "-":
        if isinstance(data, bytes):
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(data)
            sys.stdout.flush()
        return
    try:
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        with open(path, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
    except OSError as e:
        raise ToolError(f"cannot write '{path}': {e.strerror or e}") from None


def load_ir(path: str, *, allow_unregistered: bool = False, verify: bool = True) -> Any:
    """Parse the text IR in `path` ('-' = stdin) and verify it; returns the top-level op (a module)."""
    from fixflow.ir import parse_module
    text = read_text(path)
    module = parse_module(text, "<stdin>" if path == "-" else path, allow_unregistered=allow_unregistered)
    if verify:
        module.verify()
    return module


def parse_shape(text: str) -> tuple[int, ...]:
    """`"1,3,224,224"` (or `1x3x224x224`) -> (1, 3, 224, 224); `ToolError` unless all are positive ints."""
    parts = [p.strip() for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if not dims or any(d <= 0 for d in dims):
        raise ToolError(f"invalid shape '{text}': expected positive integers such as 1,3,224,224")
    return dims


def argv_list(argv: Sequence[str] | None) -> list[str]:
    """`argv` as a list (None = `sys.argv[1:]`)."""
    return list(sys.argv[1:] if argv is None else argv)
