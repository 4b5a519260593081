"""A runner API after VART's: create a runner for a DPU subgraph (or a whole graph), queue jobs, wait.

    from fixflow.runtime import Runner, dpu_subgraphs
    sg = dpu_subgraphs("net.xmodel")[0]                   # like toposort_child_subgraph() + device == DPU
    runner = Runner.create_runner(sg, "run")              # "run": fast interpreter, "sim": reference
    inp, out = runner.get_input_tensors(), runner.get_output_tensors()   # .name .dims (NHWC) .dtype .fix_point
    x = np.round(images * 2 ** inp[0].fix_point).clip(-128, 127).astype(np.int8)
    y = np.empty((len(x),) + tuple(out[0].dims[1:]), np.int8)
    job = runner.execute_async([x], [y])                  # -> (job_id, status); y is written when the job ends
    runner.wait(job)                                      # 0; wait(job, timeout=0.1) returns TIMEOUT if not done

    g = Runner.create_graph_runner("net.xmodel", "run")   # the whole graph: float tensors in and out

A runner is thread-safe and keeps many jobs in flight: `num_workers` threads (default), or processes
(`pool="process"`, each builds its own copy of the program once; for CPU-bound parallelism beyond what
numpy releases the GIL for). A job's arrays may hold any batch size N (the leading dimension; `dims[0]` is
the runner's nominal batch). A runner created for one DPU fingerprint refuses a subgraph compiled for
another, with VART's message.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..backends.xmodel import XGraph, XModelError, xmodel_bytes
from ..backends.xmodel.compiled import CompiledModel, DpuSubgraph, from_xgraph
from ..ir.diagnostics import FixflowError
from ..target import TargetError, get_target
from .dpu import DPUSubgraph
from .errors import RuntimeRunError
from .graph_runner import GraphRunner, is_compiled, load_xgraph

__all__ = ["Runner", "RunnerTensor", "SubgraphRef", "dpu_subgraphs", "check_fingerprint", "TIMEOUT", "RUNNER_MODES"]

#: `wait` status of a job that did not finish within the timeout (0 = finished).
TIMEOUT = 1
#: Runner modes (VART's names) -> how DPU subgraphs run: "run" the fast interpreter, "sim" the reference
#: interpreter (instruction by instruction), "ref" the subgraph's ops on the fix semantics (no machine code).
RUNNER_MODES = {"run": "fast", "sim": "reference", "ref": "fix", "fast": "fast", "reference": "reference", "fix": "fix"}


@dataclass(frozen=True)
class RunnerTensor:
    """A runner input or output: `dims` NHWC with the runner's batch first, `dtype` "xint8" or "float32",
    `fix_point` (scale 2**fix_point between the integers and the real values; None for float tensors)."""

    name: str
    dims: tuple[int, ...]
    dtype: str
    fix_point: int | None

    def get_attr(self, name: str) -> Any:
        """VART spelling: `get_attr("fix_point")`."""
        if name == "fix_point" and self.fix_point is not None:
            return self.fix_point
        raise RuntimeRunError(f"tensor {self.name!r} has no attribute {name!r}")

    def has_attr(self, name: str) -> bool:
        return name == "fix_point" and self.fix_point is not None


@dataclass(frozen=True)
class SubgraphRef:
    """One DPU subgraph of a compiled model (what `create_runner` takes)."""

    model: CompiledModel
    subgraph: DpuSubgraph

    @property
    def name(self) -> str:
        return self.subgraph.name

    @property
    def device(self) -> str:
        return "DPU"

    @property
    def fingerprint(self) -> int:
        return self.subgraph.target.fingerprint

    def get_attr(self, name: str) -> Any:
        """`device`, `dpu_fingerprint`, `dpu_name` or another attribute kept on the subgraph."""
        known = {"device": "DPU", "dpu_fingerprint": self.fingerprint, "dpu_name": self.subgraph.dpu_name}
        if name in known:
            return known[name]
        if name not in self.subgraph.attrs:
            raise RuntimeRunError(f"subgraph {self.name!r} has no attribute {name!r}")
        return self.subgraph.attrs[name].value

    def has_attr(self, name: str) -> bool:
        return name in ("device", "dpu_fingerprint", "dpu_name") or name in self.subgraph.attrs


def _model(source: Any) -> CompiledModel:
    if isinstance(source, CompiledModel):
        return source
    g = load_xgraph(source)
    where = os.fspath(source) if isinstance(source, (str, os.PathLike)) else g.name
    if not is_compiled(g):
        raise RuntimeRunError(f"{where}: not a compiled xmodel (no DPU subgraphs); run it with a graph runner")
    try:
        return from_xgraph(g)
    except XModelError as e:
        raise RuntimeRunError(f"{where}: invalid compiled xmodel: {e.message}") from None


def dpu_subgraphs(source: Any) -> list[SubgraphRef]:
    """The DPU subgraphs of a compiled xmodel (path, bytes, `XGraph` or `CompiledModel`), in graph order."""
    m = _model(source)
    return [SubgraphRef(m, s) for s in m.dpu_subgraphs]


def _as_fingerprint(device: Any) -> int:
    if isinstance(device, int) and not isinstance(device, bool):
        return device
    try:
        return get_target(device).fingerprint
    except TargetError as e:
        raise RuntimeRunError(f"fingerprint: {e.message}") from None


def check_fingerprint(model_fingerprint: int, dpu_fingerprint: int, where: str = "") -> None:
    """VART's check: a zero fingerprint on either side is not checked; otherwise they must be equal."""
    if model_fingerprint == 0 or dpu_fingerprint == 0 or model_fingerprint == dpu_fingerprint:
        return
    pre = f"{where}: " if where else ""
    raise RuntimeRunError(f"{pre}CHECK fingerprint fail! model_fingerprint 0x{model_fingerprint:x} is un-matched with "
                          f"actual dpu_fingerprint 0x{dpu_fingerprint:x}. Please re-compile xmodel with "
                          f"dpu_fingerprint 0x{dpu_fingerprint:x} and try again.")


# ---------------------------------------------------------------------------- what a job runs


class _DpuWork:
    """A DPU subgraph on the interpreter (or, mode "fix", its ops on the fix semantics, which needs the
    compiled model): int8 arrays in `inputs` order -> int8 arrays in `outputs` order."""

    def __init__(self, dpu: DPUSubgraph, mode: str, model: CompiledModel | None = None):
        self.dpu, self.mode, self.model = dpu, mode, model
        if mode == "fast":
            dpu.plan()
        if mode == "fix":
            if model is None:
                raise RuntimeRunError(f"subgraph {dpu.name!r}: mode 'ref' runs the subgraph's ops, which a bare "
                                      "DPUSubgraph lacks; create the runner from dpu_subgraphs(xmodel)")
            from .graph_runner import dpu_ops_step
            self.ops, op_of = dpu_ops_step(model, dpu.name)
            self.in_ops = [op_of[t.name] for t in dpu.inputs]
            self.out_ops = [op_of[t.name] for t in dpu.outputs]

    def __call__(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        if self.mode == "fix":
            env = dict(zip(self.in_ops, arrays))
            self.ops.run(env, self.mode)
            return [np.asarray(env[p], dtype=np.int8) for p in self.out_ops]
        outs = self.dpu.run(arrays, mode=self.mode)
        return [outs[t.name] for t in self.dpu.outputs]

    def recipe(self) -> tuple[Callable[..., Any], tuple]:
        d = self.dpu
        model = xmodel_bytes(self.model.to_xgraph()) if self.model is not None and self.mode == "fix" else None
        return _DpuWork._rebuild, (d.name, d.machine, d.mc_code, d.reg_sizes,
                                   {r: c.tobytes() for r, c in d.consts.items()}, d.inputs, d.outputs, self.mode,
                                   model)

    @staticmethod
    def _rebuild(name, machine, mc_code, reg_sizes, consts, inputs, outputs, mode, model) -> "_DpuWork":
        m = from_xgraph(load_xgraph(model)) if model is not None else None
        return _DpuWork(DPUSubgraph(name, machine, mc_code, reg_sizes, consts, inputs, outputs), mode, m)


class _GraphWork:
    """A whole graph: float32 arrays in -> float32 arrays out."""

    def __init__(self, graph: GraphRunner, data: bytes | None = None):
        self.graph, self._data = graph, data

    def __call__(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        return self.graph.run(arrays)

    def recipe(self) -> tuple[Callable[..., Any], tuple]:
        data = self._data if self._data is not None else xmodel_bytes(self.graph.graph)
        return _GraphWork._rebuild, (data, self.graph.mode, self.graph.name)

    @staticmethod
    def _rebuild(data: bytes, mode: str, name: str) -> "_GraphWork":
        return _GraphWork(GraphRunner(load_xgraph(data), mode, name), data)


class _BlasLimit:
    """Limits BLAS threads while any thread-pool runner is open (reference-counted; threadpoolctl if
    installed).

    Small matrix products are up to 100x slower with several BLAS threads on a busy machine, and a
    runner's parallelism is its workers. BLAS limits are per process: the limit holds from the first
    runner's creation to the last one's `close()` (then the original limits come back); changing it
    around every job instead would race with the jobs running in other threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._limiter: Any = None
        self._controller: Any = None

    def _ctl(self) -> Any:
        if self._controller is None:
            try:
                from threadpoolctl import ThreadpoolController
                self._controller = ThreadpoolController()
            except ImportError:  # pragma: no cover - optional
                self._controller = False
        return self._controller

    def enter(self, n: int | None) -> None:
        if n is None:
            return
        with self._lock:
            self._active += 1
            if self._active == 1 and self._ctl():
                self._limiter = self._controller.limit(limits=n, user_api="blas")

    def exit(self, n: int | None) -> None:
        if n is None:
            return
        with self._lock:
            self._active -= 1
            if self._active == 0 and self._limiter is not None:
                self._limiter.restore_original_limits()
                self._limiter = None


_BLAS = _BlasLimit()

# process-pool workers: the work object is built once per process
_WORKER: Any = None


def _worker_init(factory: Callable[..., Any], args: tuple, blas_threads: int | None = None) -> None:
    global _WORKER
    if blas_threads is not None:
        _BLAS.enter(blas_threads)      # for the worker's lifetime
    try:
        _WORKER = factory(*args)
    except FixflowError as e:   # reported on the first job
        _WORKER = e


def _worker_run(arrays: list[np.ndarray]) -> tuple[bool, Any]:
    if isinstance(_WORKER, FixflowError):
        return False, _WORKER.message
    try:
        return True, _WORKER(arrays)
    except FixflowError as e:   # exceptions cross the process boundary as their message
        return False, e.message


# ---------------------------------------------------------------------------- the runner


class _Job:
    __slots__ = ("event", "error", "outputs", "results", "future")

    def __init__(self, outputs: list[np.ndarray] | None):
        self.event = threading.Event()
        self.error: BaseException | None = None
        self.outputs = outputs
        self.results: list[np.ndarray] | None = None
        self.future: Future | None = None


class Runner:
    """Queues jobs on a pool of workers (threads or processes); see the module docstring."""

    def __init__(self, work: _DpuWork | _GraphWork, inputs: list[RunnerTensor], outputs: list[RunnerTensor],
                 name: str, num_workers: int = 1, pool: str = "thread", blas_threads: int | None = 1):
        if num_workers < 1:
            raise RuntimeRunError(f"num_workers must be >= 1, got {num_workers}")
        if pool not in ("thread", "process"):
            raise RuntimeRunError(f"pool must be 'thread' or 'process', got {pool!r}")
        self.name = name
        self._work = work
        #: the whole-graph runner behind a graph runner (None for a DPU subgraph runner)
        self.graph: GraphRunner | None = work.graph if isinstance(work, _GraphWork) else None
        self._inputs, self._outputs = inputs, outputs
        self._in_dtype = np.int8 if inputs and inputs[0].dtype == "xint8" else np.float32
        self._out_dtype = np.int8 if outputs and outputs[0].dtype == "xint8" else np.float32
        self.pool = pool
        self.num_workers = num_workers
        if blas_threads is not None and blas_threads < 1:
            raise RuntimeRunError(f"blas_threads must be >= 1 or None, got {blas_threads}")
        self.blas_threads = blas_threads
        self._executor: Executor
        if pool == "thread":
            _BLAS.enter(blas_threads)          # until close()
            self._executor = ThreadPoolExecutor(num_workers, thread_name_prefix=f"fixflow-runner-{name}")
        else:
            _check_spawnable()
            factory, args = work.recipe()
            ctx = multiprocessing.get_context("spawn")
            self._executor = ProcessPoolExecutor(num_workers, mp_context=ctx, initializer=_worker_init,
                                                 initargs=(factory, args, blas_threads))
        self._jobs: dict[int, _Job] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._closed = False

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def create_runner(cls, subgraph: Any, mode: str = "run", *, fingerprint: Any = None, batch: int = 1,
                      num_workers: int = 1, pool: str = "thread", blas_threads: int | None = 1) -> "Runner":
        """A runner for one DPU subgraph: a `SubgraphRef` (from `dpu_subgraphs`), a
        `fixflow.runtime.dpu.DPUSubgraph`, or a compiled xmodel (path, bytes, `XGraph`, `CompiledModel`)
        with exactly one DPU subgraph. `mode`: "run" (fast interpreter), "sim" (reference, instruction
        by instruction) or "ref" (the subgraph's ops on the fix semantics, no machine code). `fingerprint`: the DPU this runner stands for (int, target name or board); a
        subgraph compiled for another one is refused. `blas_threads`: BLAS threads while jobs run (None:
        leave BLAS alone)."""
        imode = _interp_mode(mode)
        model = None
        if isinstance(subgraph, DPUSubgraph):
            dpu, model_fp = subgraph, get_target(subgraph.machine.name).fingerprint
        else:
            if not isinstance(subgraph, SubgraphRef):
                refs = dpu_subgraphs(subgraph)
                if len(refs) != 1:
                    raise RuntimeRunError(f"{len(refs)} DPU subgraphs in the xmodel; pick one from dpu_subgraphs() "
                                          "or run the whole graph with create_graph_runner")
                subgraph = refs[0]
            try:
                dpu = DPUSubgraph.from_xmodel(subgraph.model, subgraph.name)
            except FixflowError as e:
                raise RuntimeRunError(e.message) from None
            model_fp = subgraph.fingerprint
            model = subgraph.model
        if fingerprint is not None:
            check_fingerprint(model_fp, _as_fingerprint(fingerprint), f"subgraph {dpu.name!r}")
        if batch < 1:
            raise RuntimeRunError(f"batch must be >= 1, got {batch}")
        ins = [RunnerTensor(t.name, (batch,) + tuple(t.shape[1:]), "xint8", t.fix_point) for t in dpu.inputs]
        outs = [RunnerTensor(t.name, (batch,) + tuple(t.shape[1:]), "xint8", t.fix_point) for t in dpu.outputs]
        return cls(_DpuWork(dpu, imode, model), ins, outs, dpu.name, num_workers, pool, blas_threads)

    @classmethod
    def create_graph_runner(cls, graph: Any, mode: str = "run", *, fingerprint: Any = None, batch: int = 1,
                            num_workers: int = 1, pool: str = "thread", blas_threads: int | None = 1) -> "Runner":
        """A runner for a whole graph (compiled xmodel or `_int.xmodel`; path, bytes, `XGraph` or a
        `GraphRunner`): float32 tensors in and out, the DPU subgraphs on the interpreter."""
        imode = _interp_mode(mode)
        data = None
        if isinstance(graph, GraphRunner):
            g = graph if graph.mode == imode else GraphRunner(graph.graph, imode, graph.name)
        else:
            if isinstance(graph, (str, os.PathLike)):
                from ..backends.xmodel.serial import read_file_bytes
                data = read_file_bytes(graph)
                name = os.fspath(graph)
            else:
                data = bytes(graph) if isinstance(graph, (bytes, bytearray)) else None
                name = None
            xg = load_xgraph(data if data is not None else graph)
            try:
                g = GraphRunner(xg, imode, name)
            except XModelError as e:
                raise RuntimeRunError(f"{name or xg.name}: {e.message}") from None
        if fingerprint is not None:
            fp = _as_fingerprint(fingerprint)
            for s in g.dpu_steps:
                check_fingerprint(s.subgraph.target.fingerprint, fp, f"subgraph {s.name!r}")
        if batch < 1:
            raise RuntimeRunError(f"batch must be >= 1, got {batch}")

        def spec(s):
            return RunnerTensor(s.name, (batch,) + tuple(s.shape[1:]), "float32", s.fix_point)
        return cls(_GraphWork(g, data), [spec(s) for s in g.inputs], [spec(s) for s in g.outputs],
                   g.name, num_workers, pool, blas_threads)

    # -- VART API ----------------------------------------------------------------------------------
    def get_input_tensors(self) -> list[RunnerTensor]:
        return list(self._inputs)

    def get_output_tensors(self) -> list[RunnerTensor]:
        return list(self._outputs)

    def _check_inputs(self, inputs: Sequence[Any] | Mapping[str, Any]) -> list[np.ndarray]:
        if isinstance(inputs, Mapping):
            missing = [t.name for t in self._inputs if t.name not in inputs]
            if missing:
                raise RuntimeRunError(f"missing input {missing[0]!r}")
            inputs = [inputs[t.name] for t in self._inputs]
        if isinstance(inputs, np.ndarray):
            inputs = [inputs]
        arrays = list(inputs)
        if len(arrays) != len(self._inputs):
            raise RuntimeRunError(f"{len(arrays)} input(s) given, runner {self.name!r} takes {len(self._inputs)}")
        out = []
        for t, a in zip(self._inputs, arrays):
            a = np.asarray(a)
            if a.ndim != len(t.dims) or tuple(a.shape[1:]) != tuple(t.dims[1:]):
                want = ", ".join(["N"] + [str(d) for d in t.dims[1:]])
                raise RuntimeRunError(f"input {t.name!r} has shape {tuple(a.shape)}, expected ({want})")
            if self._in_dtype == np.int8 and a.dtype != np.int8:
                raise RuntimeRunError(f"input {t.name!r} must be int8 (fixed point at fix_point {t.fix_point}), "
                                      f"got {a.dtype}")
            out.append(np.ascontiguousarray(a, dtype=self._in_dtype))
        if len({a.shape[0] for a in out}) > 1:
            raise RuntimeRunError("all inputs of a job must have the same batch size")
        return out

    def _check_outputs(self, outputs: Sequence[np.ndarray] | None, n: int) -> list[np.ndarray] | None:
        if outputs is None:
            return None
        outputs = list(outputs)
        if len(outputs) != len(self._outputs):
            raise RuntimeRunError(f"{len(outputs)} output array(s) given, runner {self.name!r} has "
                                  f"{len(self._outputs)}")
        for t, o in zip(self._outputs, outputs):
            want = (n,) + tuple(t.dims[1:])
            if not isinstance(o, np.ndarray) or o.shape != want or o.dtype != self._out_dtype or \
                    not o.flags.writeable:
                got = f"{o.dtype} {o.shape}" if isinstance(o, np.ndarray) else type(o).__name__
                raise RuntimeRunError(f"output {t.name!r} must be a writeable {np.dtype(self._out_dtype)} array of "
                                      f"shape {want}, got {got}")
        return outputs

    def execute_async(self, inputs: Sequence[Any] | Mapping[str, Any],
                      outputs: Sequence[np.ndarray] | None = None) -> tuple[int, int]:
        """Queue a job; returns `(job_id, status)` (status 0). The output arrays (if given) are filled
        when the job ends; `wait(job_id)` waits for that (and `result(job_id)` gives the outputs)."""
        arrays = self._check_inputs(inputs)
        outs = self._check_outputs(outputs, arrays[0].shape[0] if arrays else 1)
        job = _Job(outs)
        with self._lock:
            if self._closed:
                raise RuntimeRunError(f"runner {self.name!r} is closed")
            job_id = next(self._ids) & 0xFFFFFFFF
            self._jobs[job_id] = job
            if self.pool == "thread":
                job.future = self._executor.submit(self._run_in_thread, job, arrays)
            else:
                job.future = self._executor.submit(_worker_run, arrays)
                job.future.add_done_callback(lambda f, job=job: self._finish_process(job, f))
        return job_id, 0

    def _run_in_thread(self, job: _Job, arrays: list[np.ndarray]) -> None:
        try:
            self._deliver(job, self._work(arrays))
        except BaseException as e:  # noqa: BLE001 - handed to wait()
            job.error = e
        finally:
            job.event.set()

    def _finish_process(self, job: _Job, fut: Future) -> None:
        try:
            ok, value = fut.result()
            if ok:
                self._deliver(job, value)
            else:
                job.error = RuntimeRunError(value)
        except BaseException as e:  # noqa: BLE001 - a broken pool, handed to wait()
            job.error = RuntimeRunError(f"runner {self.name!r}: worker process failed: {type(e).__name__}: {e}")
        finally:
            job.event.set()

    @staticmethod
    def _deliver(job: _Job, results: list[np.ndarray]) -> None:
        job.results = results
        if job.outputs is not None:
            for o, r in zip(job.outputs, results):
                o[...] = r

    def _job(self, job_id: Any) -> tuple[int, _Job]:
        if isinstance(job_id, tuple):
            job_id = job_id[0]
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise RuntimeRunError(f"runner {self.name!r}: unknown job id {job_id!r} (never queued, or already waited for)")
        return job_id, job

    def wait(self, job_id: int | tuple[int, int], timeout: float | None = None) -> int:
        """Wait for a job (its id or the `(job_id, status)` pair). `timeout` in seconds (None or negative:
        no limit, 0: just poll). Returns 0 when it finished (then the id is released) or `TIMEOUT`;
        a job that failed raises its error."""
        jid, job = self._job(job_id)
        if timeout is not None and timeout < 0:
            timeout = None
        if not job.event.wait(timeout):
            return TIMEOUT
        with self._lock:
            self._jobs.pop(jid, None)
        if job.error is not None:
            if isinstance(job.error, FixflowError):
                raise job.error
            raise RuntimeRunError(f"runner {self.name!r}: job {jid} failed: {type(job.error).__name__}: "
                                  f"{job.error}") from job.error
        return 0

    def result(self, job_id: int | tuple[int, int], timeout: float | None = None) -> list[np.ndarray]:
        """Wait for a job and return its output arrays."""
        jid, job = self._job(job_id)
        if self.wait(jid, timeout) == TIMEOUT:
            raise RuntimeRunError(f"runner {self.name!r}: job {jid} did not finish within {timeout} s")
        return job.results if job.outputs is None else job.outputs

    def execute(self, inputs: Sequence[Any] | Mapping[str, Any]) -> list[np.ndarray]:
        """Run one job and return its outputs (`execute_async` + `result`)."""
        return self.result(self.execute_async(inputs))

    def pending(self) -> int:
        """Jobs queued or running or finished but not yet waited for."""
        with self._lock:
            return len(self._jobs)

    def close(self, wait: bool = True) -> None:
        """Stop the workers (after the queued jobs when `wait`)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            jobs = list(self._jobs.values())
        self._executor.shutdown(wait=wait, cancel_futures=not wait)
        if self.pool == "thread":
            _BLAS.exit(self.blas_threads)
        for job in jobs:   # jobs cancelled before they started still end (wait raises)
            if job.future is not None and job.future.cancelled() and not job.event.is_set():
                job.error = RuntimeRunError(f"runner {self.name!r} was closed before the job ran")
                job.event.set()

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Runner({self.name!r}, {self.num_workers} {self.pool} worker(s))"


def _check_spawnable() -> None:
    """Process workers are spawned; they re-import the main script, which must be a file."""
    import sys
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is not None and not os.path.exists(path):
        raise RuntimeRunError(f"pool='process' needs the main program in a file (it is {path!r}); "
                              "use pool='thread' here")


def _interp_mode(mode: str) -> str:
    try:
        return RUNNER_MODES[mode]
    except KeyError:
        raise RuntimeRunError(f"unknown runner mode {mode!r} (expected run, sim or ref)") from None
