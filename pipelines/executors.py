"""Where steps run, and the loop that submits each step once its dependencies are complete.

Executors (all return ``concurrent.futures.Future`` s of :func:`pipelines.steps.run_step`):

* :class:`LocalExecutor` - ``workers=1``: each step in this process, one after another;
  ``workers=N``: a ``concurrent.futures.ProcessPoolExecutor`` of N spawned processes (spawn,
  not fork: zarr's event-loop thread and torch do not survive a fork).
* :class:`RayExecutor` - each step a Ray task with its step's ``num_cpus`` / ``num_gpus``; Ray
  decides where and when it runs. The output root (and ``store_root``) must be a directory or
  URL every node reaches.

:func:`run_pipeline` only knows dependencies: it submits the steps whose inputs are complete
(at most ``executor.capacity`` at a time, so "running" means running) and waits for any to
finish. Placement and resource accounting are the pool's or Ray's.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

from pipelines.graph import Graph, Step, is_done, read_step_file
from pipelines.steps import run_step


class LocalExecutor:
    """Steps in this process (``workers=1``) or in a pool of spawned processes."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = max(1, int(workers))
        self.capacity = self.workers
        self._pool = None
        if self.workers > 1:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"))

    @property
    def label(self) -> str:
        return "local, in this process" if self._pool is None else \
            f"local process pool of {self.workers}"

    def submit(self, payload: dict[str, Any]) -> concurrent.futures.Future:
        if self._pool is not None:
            return self._pool.submit(run_step, payload)
        future: concurrent.futures.Future = concurrent.futures.Future()
        future.set_result(run_step(payload))
        return future

    def close(self, cancel: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=not cancel, cancel_futures=cancel)


class RayExecutor:
    """Each step a Ray task with the step's CPU/GPU needs.

    Connects to ``address`` (``"auto"``: the running cluster; None: an instance already
    initialised in this process, else a new local one) and shuts down only an instance it
    started itself.
    """

    capacity = sys.maxsize  # Ray queues tasks until resources free up

    def __init__(self, address: str | None = None) -> None:
        import ray

        from spin_data.cluster import connect_ray

        self._ray = ray
        self._started = connect_ray(address)
        # No retries: a step that failed recorded why; re-running it is the user's call.
        self._remote = ray.remote(max_retries=0)(run_step)
        resources = ray.cluster_resources()
        self.label = (f"Ray ({resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs"
                      f"{', ' + address if address else ''})")

    def submit(self, payload: dict[str, Any]) -> concurrent.futures.Future:
        res = payload["resources"]
        ref = self._remote.options(num_cpus=res["cpus"], num_gpus=res.get("gpus", 0.0),
                                   name=f"spin-pipeline:{payload['name']}").remote(payload)
        return ref.future()

    def close(self, cancel: bool = False) -> None:
        if self._started:
            self._ray.shutdown()


def make_executor(kind: str, workers: int = 1, address: str | None = None):
    """``local`` (``workers`` processes) or ``ray`` (``address``)."""
    if kind == "local":
        return LocalExecutor(workers)
    if kind == "ray":
        return RayExecutor(address)
    raise ValueError(f"unknown executor {kind!r}: accepted local, ray")


# ============================================================================= progress
@dataclass
class Progress:
    """Prints one line per event (done earlier / started / finished / failed) with the counts
    of done, running and waiting steps, and while steps run, a heartbeat line every
    ``heartbeat_s`` seconds with their elapsed time and latest logged step."""

    total: int
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    heartbeat_s: float = 60.0
    started: float = field(default_factory=time.perf_counter)
    done: int = 0
    running: dict[str, tuple[Step, float]] = field(default_factory=dict)
    failed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _clock(self) -> str:
        s = int(time.perf_counter() - self.started)
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"

    def _counts(self) -> str:
        waiting = self.total - self.done - len(self.running) - self.failed
        text = f"{self.done}/{self.total} done, {len(self.running)} running, {waiting} waiting"
        return text + (f", {self.failed} failed" if self.failed else "")

    def line(self, text: str) -> None:
        with self._lock:
            print(f"[{self._clock()}] {text}", file=self.stream, flush=True)

    def skipped(self, step: Step) -> None:
        self.done += 1
        self.line(f"done earlier  {step.kind:9s} {step.name}")

    def start(self, step: Step) -> None:
        self.running[step.name] = (step, time.perf_counter())
        self.line(f"start         {step.kind:9s} {step.name}   ({self._counts()})")

    def finish(self, step: Step, record: dict[str, Any]) -> None:
        self.running.pop(step.name, None)
        took = record.get("duration_s")
        if record.get("status") == "complete":
            self.done += 1
            self.line(f"done          {step.kind:9s} {step.name} in {took or 0:.1f} s   "
                      f"({self._counts()})")
        else:
            self.failed += 1
            self.line(f"FAILED        {step.kind:9s} {step.name}: {record.get('error')} "
                      f"(log: {step.dir / 'log.txt'})   ({self._counts()})")

    def blocked(self, step: Step, because: str) -> None:
        self.failed += 1
        self.line(f"not run       {step.kind:9s} {step.name} (needs {because}, which failed)")

    def beat(self) -> None:
        for step, since in list(self.running.values()):
            self.line(f"running       {step.kind:9s} {step.name} for "
                      f"{time.perf_counter() - since:.0f} s{_latest(step)}")

    def start_heartbeat(self) -> Callable[[], None]:
        """A daemon thread printing :meth:`beat` (a daemon: it never holds the process up)."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(self.heartbeat_s):
                self.beat()

        if self.heartbeat_s > 0:
            threading.Thread(target=loop, daemon=True, name="pipeline-heartbeat").start()
        return stop.set


def _latest(step: Step) -> str:
    """The last row a running pretrain/policy step logged (epoch / step and its score)."""
    if step.kind not in ("pretrain", "policy"):
        return ""
    from spin_train.runs import read_metrics

    rows = read_metrics(step.dir)
    if not rows:
        return ""
    row = rows[-1]
    if step.kind == "pretrain":
        return f": epoch {row.get('epoch')}/{step.params['config'].get('epochs', 100)}"
    ret = row.get("eval_return_mean")
    score = f", return {ret:.1f}" if isinstance(ret, (int, float)) else ""
    return f": step {row.get('step')}/{step.params['config'].get('steps', 1_000_000)}{score}"


# ============================================================================= the loop
@dataclass
class RunResult:
    """What a pipeline run did."""

    ran: list[str]
    skipped: list[str]
    failed: dict[str, str]  # step -> error
    blocked: list[str]
    seconds: float
    records: dict[str, dict[str, Any]]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked


def run_pipeline(graph: Graph, executor, *, progress: Progress | None = None,
                 keep_going: bool = False) -> RunResult:
    """Run every step that is not done, each once its inputs are complete.

    A failed step stops new submissions (steps already running finish, so their work is kept)
    unless ``keep_going``, which goes on with every step that does not depend on a failure.
    Interrupting (Ctrl-C) cancels what has not started; run again to resume.
    """
    progress = progress or Progress(total=len(graph.steps))
    progress.total = progress.total or len(graph.steps)
    started = time.perf_counter()
    state: dict[str, str] = {}
    result = RunResult([], [], {}, [], 0.0, {})
    for step in graph.order:
        if is_done(step):
            state[step.name] = "done"
            result.skipped.append(step.name)
            result.records[step.name] = read_step_file(step.dir) or {}
            progress.skipped(step)
        else:
            state[step.name] = "waiting"
    running: dict[concurrent.futures.Future, Step] = {}
    stop_heartbeat = progress.start_heartbeat()
    try:
        while True:
            stopping = bool(result.failed) and not keep_going
            if not stopping:
                for step in graph.order:
                    if len(running) >= executor.capacity:
                        break
                    if state[step.name] != "waiting":
                        continue
                    bad = next((d for d in step.deps if state[d] in ("failed", "blocked")),
                               None)
                    if bad is not None:
                        state[step.name] = "blocked"
                        result.blocked.append(step.name)
                        progress.blocked(step, bad)
                        continue
                    if all(state[d] == "done" for d in step.deps):
                        state[step.name] = "running"
                        progress.start(step)
                        running[executor.submit(step.payload(graph))] = step
                        if executor.capacity == 1:
                            break  # run inline: look at the graph again after each step
            if not running:
                break
            finished, _ = concurrent.futures.wait(
                running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                step = running.pop(future)
                try:
                    record = future.result()
                except Exception as err:  # the worker itself died (OOM kill, lost node...)
                    record = {"status": "failed", "duration_s": None,
                              "error": f"{type(err).__name__}: {' '.join(str(err).split())}"
                                       [:500]}
                result.records[step.name] = record
                progress.finish(step, record)
                if record.get("status") == "complete":
                    state[step.name] = "done"
                    result.ran.append(step.name)
                else:
                    state[step.name] = "failed"
                    result.failed[step.name] = str(record.get("error"))
    except BaseException:
        executor.close(cancel=True)
        raise
    finally:
        stop_heartbeat()
    executor.close()
    result.seconds = time.perf_counter() - started
    return result
