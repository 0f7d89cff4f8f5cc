"""WorkerMetrics: one /metrics for all the workers of ``hub serve --workers N``, whichever worker answers.

Each worker writes a snapshot of its metrics (JSON, replaced atomically) to a directory of the supervisor's under
the data dir every ``metrics_interval`` seconds. The worker that is scraped adds the other live workers' snapshots
to its own live values: counters, histograms and gauges are summed; the process's own metrics (``process_*``,
``python_gc_*``) stay one series per worker, labelled ``worker="<pid>"``. A dead worker's counters and
histograms are folded into a file of retired totals before its snapshot is deleted, so the sums never go back
(its gauges and process metrics go with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client.metrics_core import Metric

from hub.metrics import workers_gauge

if TYPE_CHECKING:
    from hub.metrics import Metrics

log = logging.getLogger("hub.metrics")

DIRECTORY = "metrics"  # under the data dir: one workers-<supervisor pid> directory per `hub serve --workers N`
RETIRED = "retired.json"
LOCK = ".lock"
PER_PROCESS = ("process_", "python_gc_")  # one series per worker, never summed
SUMMED_WHEN_RETIRED = ("counter", "histogram")  # what a dead worker leaves behind

SampleKey = tuple[str, tuple[tuple[str, str], ...]]  # (sample name, sorted labels)


@dataclass
class Family:
    """A metric family as a snapshot holds it: samples by (name, labels)."""

    name: str
    type: str
    help: str
    samples: dict[SampleKey, float]

    @classmethod
    def of(cls, metric: Metric) -> Family:
        samples = {(s.name, tuple(sorted(s.labels.items()))): float(s.value) for s in metric.samples}
        return cls(metric.name, metric.type, metric.documentation, samples)

    def as_json(self) -> dict[str, Any]:
        samples = [[name, dict(labels), value] for (name, labels), value in self.samples.items()]
        return {"name": self.name, "type": self.type, "help": self.help, "samples": samples}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Family:
        samples = {(str(name), tuple(sorted((str(k), str(v)) for k, v in labels.items()))): float(value)
                   for name, labels, value in data["samples"]}  # fmt: skip
        return cls(str(data["name"]), str(data["type"]), str(data["help"]), samples)

    def labelled(self, worker: str) -> Family:
        samples = {
            (name, tuple(sorted((*labels, ("worker", worker))))): v for (name, labels), v in self.samples.items()
        }
        return Family(self.name, self.type, self.help, samples)

    def metric(self) -> Metric:
        metric = Metric(self.name, self.help, self.type)
        for (name, labels), value in self.samples.items():
            metric.add_sample(name, dict(labels), value)
        return metric


def add_up(groups: Iterable[Iterable[Family]]) -> list[Family]:
    """Families of several workers, summed sample by sample (the first one seen gives a family's type and help)."""
    total: dict[str, Family] = {}
    for families in groups:
        for family in families:
            into = total.get(family.name)
            if into is None:
                total[family.name] = Family(family.name, family.type, family.help, dict(family.samples))
                continue
            for key, value in family.samples.items():
                into.samples[key] = into.samples.get(key, 0.0) + value
    return list(total.values())


def workers_directory(data_dir: Path, supervisor_pid: int) -> Path:
    return data_dir / DIRECTORY / f"workers-{supervisor_pid}"


def prepare_workers_directory(data_dir: Path) -> Path:
    """In the supervisor, before the workers start: its workers' directory, made empty, and the directories of
    supervisors that died without removing theirs, removed."""
    parent = data_dir / DIRECTORY
    parent.mkdir(parents=True, exist_ok=True)
    for stale in parent.glob("workers-*"):
        pid = stale.name.removeprefix("workers-")
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    directory = workers_directory(data_dir, os.getpid())
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir()
    return directory


@contextlib.contextmanager
def shared_by_workers(data_dir: Path) -> Iterator[Path | None]:
    """Around the supervisor's run: the workers' directory, removed at the end. One that cannot be made (a data
    dir that is not writable) is a warning: each worker's /metrics then answers for itself only."""
    try:
        directory: Path | None = prepare_workers_directory(data_dir)
    except OSError as exc:
        log.warning("/metrics answers for one worker each: no directory for their metrics under %s (%s)", data_dir, exc)
        directory = None
    try:
        yield directory
    finally:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


class WorkerMetrics:
    """This worker's share of the workers' directory (``Metrics.workers``): its snapshots, and the merged view."""

    def __init__(self, directory: Path, interval: float, *, pid: int | None = None) -> None:
        self.directory = directory
        self.interval = interval
        self.pid = pid if pid is not None else os.getpid()
        self._metrics: Metrics | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing = False  # a failed write was logged; the next success says so

    @classmethod
    def for_worker(cls, data_dir: Path, interval: float) -> WorkerMetrics | None:
        """In a worker process: its supervisor's directory, if the supervisor made one (``hub serve --workers``)."""
        directory = workers_directory(data_dir, os.getppid())
        return cls(directory, interval) if directory.is_dir() else None

    async def start(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self.write()
        self._task = asyncio.create_task(self._run(), name="hub-worker-metrics")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.write()  # the last counts, for the workers that fold them into the retired totals

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.write()
            try:
                with self._lock():
                    self._retire_dead()
            except OSError as exc:
                log.warning("could not retire dead workers' metrics in %s: %s", self.directory, exc)

    def write(self, families: list[Family] | None = None) -> None:
        """Replace this worker's snapshot with its metrics now (or with ``families``, read from them just now)."""
        if families is None:
            if self._metrics is None:
                return
            families = [Family.of(m) for m in (*self._metrics.families(), *self._metrics.process_families())]
        path = self.directory / f"{self.pid}.json"
        staging = self.directory / f".{self.pid}.json.tmp"
        try:
            staging.write_text(json.dumps({"pid": self.pid, "families": [f.as_json() for f in families]}))
            os.replace(staging, path)
        except OSError as exc:
            if not self._failing:
                log.warning("could not write this worker's metrics to %s: %s", path, exc)
            self._failing = True
        else:
            if self._failing:
                log.info("writing this worker's metrics to %s works again", path)
            self._failing = False

    def merged(self, metrics: Metrics) -> Iterator[Metric]:
        """What /metrics shows: every live worker's hub metrics summed (with the dead workers' retired counters),
        each worker's process metrics labelled with its pid, ``hub_workers``, and ``python_info``."""
        own = [Family.of(m) for m in metrics.families()]
        process = [Family.of(m) for m in metrics.process_families()]
        # Written first, so the totals never go back from one answer to the next, whichever worker gives them: a
        # later answer by another worker reads this snapshot or a newer one, never an older one.
        self.write([*own, *process])
        own_process = [family.labelled(str(self.pid)) for family in process]
        others: dict[int, list[Family]] = {}
        retired: list[Family] = []
        try:
            with self._lock():
                self._retire_dead()
                retired = self._read_retired()
                others = self._read_snapshots()
        except OSError as exc:  # this worker's own metrics still answer
            log.warning("could not read the other workers' metrics in %s: %s", self.directory, exc)
        hub_groups: list[list[Family]] = [own, retired]
        process_groups: list[list[Family]] = [own_process]
        for pid, families in sorted(others.items()):
            hub_groups.append([f for f in families if not f.name.startswith(PER_PROCESS)])
            process_groups.append([f.labelled(str(pid)) for f in families if f.name.startswith(PER_PROCESS)])
        for family in add_up(hub_groups):
            yield family.metric()
        yield workers_gauge(1 + len(others))
        for family in add_up(process_groups):
            yield family.metric()
        yield from metrics.platform_families()

    # ---- the directory --------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """One worker at a time reads or retires (a dead worker's counts are moved exactly once)."""
        with open(self.directory / LOCK, "a") as file:
            fcntl.flock(file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(file, fcntl.LOCK_UN)

    def _snapshot_files(self) -> Iterator[tuple[int, Path]]:
        for path in self.directory.glob("*.json"):
            if path.stem.isdigit():
                yield int(path.stem), path

    def _read_snapshots(self) -> dict[int, list[Family]]:
        """The other live workers' snapshots (a file that cannot be read is left out, with a warning)."""
        found: dict[int, list[Family]] = {}
        for pid, path in self._snapshot_files():
            if pid != self.pid:
                families = _load(path)
                if families is not None:
                    found[pid] = families
        return found

    def _read_retired(self) -> list[Family]:
        path = self.directory / RETIRED
        return (_load(path) or []) if path.exists() else []

    def _retire_dead(self) -> None:
        """Fold each dead worker's counters and histograms into the retired totals, then delete its snapshot.
        Under the lock (:meth:`_lock`)."""
        dead = [(pid, path) for pid, path in self._snapshot_files() if pid != self.pid and not _alive(pid)]
        if not dead:
            return
        retired = self._read_retired()
        for pid, path in dead:
            families = _load(path) or []
            kept = [f for f in families if f.type in SUMMED_WHEN_RETIRED and not f.name.startswith(PER_PROCESS)]
            retired = add_up([retired, kept])
            log.info("worker %d is gone: its counters are kept in %s", pid, RETIRED)
        staging = self.directory / f".{RETIRED}.{self.pid}.tmp"
        staging.write_text(json.dumps({"families": [f.as_json() for f in retired]}))
        os.replace(staging, self.directory / RETIRED)
        for _pid, path in dead:
            path.unlink(missing_ok=True)


def _load(path: Path) -> list[Family] | None:
    try:
        data = json.loads(path.read_text())
        return [Family.from_json(family) for family in data["families"]]
    except FileNotFoundError:
        return None  # retired meanwhile
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("left out the worker metrics in %s: %s", path, exc)
        return None


def _alive(pid: int) -> bool:
    """Whether a process runs with this pid (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: kill() said it exists
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")
