"""WorkerMetrics: the workers' snapshots summed into one view, and a dead worker's counters kept (in-process,
with real processes standing in for the other workers; tests/e2e/test_metrics_workers.py runs hub serve --workers)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub.metrics import Metrics
from hub.worker_metrics import (
    RETIRED,
    WorkerMetrics,
    prepare_workers_directory,
    shared_by_workers,
    workers_directory,
)


@pytest.fixture
def other_worker() -> Iterator[subprocess.Popen[bytes]]:
    """A live process whose pid stands for another worker's."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


def scrape(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(metrics.render()):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def worker(directory: Path, pid: int, sent: int, feeds: float) -> Metrics:
    metrics = Metrics()
    metrics.workers = WorkerMetrics(directory, 1.0, pid=pid)
    metrics.frames_received = sent
    metrics.messages_in["chat.send"] = sent
    metrics.errors["invalid"] = 1
    metrics.gauge("hub_demo_feeds", "Feeds.", lambda: feeds)
    metrics.publish_done("chat.send", 0.0)
    metrics.fanout_size.observe(3)
    return metrics


async def test_a_scrape_adds_up_the_live_workers(tmp_path: Path, other_worker: subprocess.Popen[bytes]) -> None:
    directory = tmp_path / "workers"
    directory.mkdir()
    me, other = worker(directory, os.getpid(), 5, 1.0), worker(directory, other_worker.pid, 7, 2.0)
    assert other.workers is not None
    await other.workers.start(other)  # writes its snapshot at once
    await other.workers.stop()
    found = scrape(me)
    assert found[("hub_frames_received_total", frozenset())] == 12
    assert found[("hub_messages_in_total", frozenset({("plugin", "chat"), ("type", "chat.send")}))] == 12
    assert found[("hub_errors_total", frozenset({("code", "invalid")}))] == 2
    assert found[("hub_demo_feeds", frozenset())] == 3  # gauges too
    assert found[("hub_publish_latency_seconds_count", frozenset({("plugin", "chat")}))] == 2
    assert found[("hub_fanout_subscribers_bucket", frozenset({("le", "5.0")}))] == 2
    assert found[("hub_workers", frozenset())] == 2
    cpu = {labels for name, labels in found if name == "process_cpu_seconds_total"}
    assert cpu == {frozenset({("worker", str(os.getpid()))}), frozenset({("worker", str(other_worker.pid))})}
    assert ("python_info", frozenset()) not in found  # labelled: implementation, version, ...
    assert sum(1 for name, _ in found if name == "python_info") == 1


async def test_the_totals_never_go_back_whichever_worker_answers(
    tmp_path: Path, other_worker: subprocess.Popen[bytes]
) -> None:
    directory = tmp_path / "workers"
    directory.mkdir()
    one, two = worker(directory, os.getpid(), 5, 1.0), worker(directory, other_worker.pid, 7, 2.0)
    for metrics in (one, two):
        assert metrics.workers is not None
        await metrics.workers.start(metrics)  # a snapshot each; no later one within the test (interval 1 s)
    try:
        last = 0.0
        for step in range(6):
            answering, other = (one, two) if step % 2 == 0 else (two, one)
            answering.frames_received += 10
            other.frames_received += 10  # not in any snapshot yet: the answer cannot show it
            total = scrape(answering)[("hub_frames_received_total", frozenset())]
            assert total >= last
            last = total
        assert last == 5 + 7 + 120 - 10  # all but the last increment of the worker that did not answer
    finally:
        for metrics in (one, two):
            assert metrics.workers is not None
            await metrics.workers.stop()


async def test_a_dead_workers_counters_stay_and_its_gauges_go(
    tmp_path: Path, other_worker: subprocess.Popen[bytes]
) -> None:
    directory = tmp_path / "workers"
    directory.mkdir()
    me, other = worker(directory, os.getpid(), 5, 1.0), worker(directory, other_worker.pid, 7, 2.0)
    assert other.workers is not None
    await other.workers.start(other)
    await other.workers.stop()
    other_worker.kill()
    other_worker.wait()
    for _ in range(2):  # retired once: the second scrape must not count it again
        found = scrape(me)
        assert found[("hub_frames_received_total", frozenset())] == 12
        assert found[("hub_publish_latency_seconds_count", frozenset({("plugin", "chat")}))] == 2
        assert found[("hub_demo_feeds", frozenset())] == 1
        assert found[("hub_workers", frozenset())] == 1
        assert not any(name.startswith("process_") and ("worker", str(other_worker.pid)) in labels
                       for name, labels in found)  # fmt: skip
    files = sorted(path.name for path in directory.iterdir() if not path.name.startswith("."))
    assert files == sorted([f"{os.getpid()}.json", RETIRED])  # the answering worker's own snapshot, written then


def test_an_unreadable_snapshot_is_left_out(tmp_path: Path, other_worker: subprocess.Popen[bytes]) -> None:
    directory = tmp_path / "workers"
    directory.mkdir()
    (directory / f"{other_worker.pid}.json").write_text("{not json")
    found = scrape(worker(directory, os.getpid(), 5, 1.0))
    assert found[("hub_frames_received_total", frozenset())] == 5
    assert found[("hub_workers", frozenset())] == 1


def test_the_supervisor_removes_directories_of_dead_supervisors(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    stale = workers_directory(tmp_path, int(dead.stdout))
    stale.mkdir(parents=True)
    (stale / "123.json").write_text("{}")
    mine = prepare_workers_directory(tmp_path)
    assert mine == workers_directory(tmp_path, os.getpid())
    assert mine.is_dir()
    assert not stale.exists()


def test_without_a_writable_data_dir_each_worker_answers_for_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with shared_by_workers(blocked) as directory:
        assert directory is None
    assert "answers for one worker each" in caplog.text
    with shared_by_workers(tmp_path) as directory:
        assert directory is not None
        assert directory.is_dir()
    assert not directory.exists()  # removed when the supervisor is done
