#!/usr/bin/env python3
"""WebSocket conformance of the hub's server settings: the Autobahn|Testsuite fuzzing client against echo.py.

Run it through ``scripts/autobahn``, which sets up the fuzzing client (``wstest``, Python 2.7) in its own
virtualenv and passes its arguments here:

    scripts/autobahn                                # every case but 12.* and 13.* (deflate), about 15 s
    scripts/autobahn --cases 1.*,7.*                # a subset
    scripts/autobahn --max-frame-bytes 16777216     # the limits cases (9.*) with a limit they all fit in

echo.py is served by ``hub.server.uvicorn_config`` with ``HUB_MAX_FRAME_BYTES`` set to ``--max-frame-bytes``;
``wstest -m fuzzingclient`` runs the cases, and its ``index.json`` is read back. Every case gets one result:
Autobahn's ``behavior``, made FAILED when its ``behaviorClose`` failed. Two kinds are counted apart:

- **over the limit**: a message longer than ``max_frame_bytes`` is refused with close 1009, as the hub
  documents; Autobahn reports FAILED (it expects the echo). Only a case whose payload (from its description)
  exceeds the limit and whose close code is 1009 counts here.
- **reset before 1009**: a known defect, reported (see RESET_OVER_LIMIT): an over-limit case where the client
  saw a TCP reset instead of the 1009, because it was still sending when the hub closed.
- **documented by websockets**: the library documents its results for some cases (its
  compliance/README.rst): NON-STRICT in 3.2, 3.3, 4.1.3, 4.1.4, 4.2.3, 4.2.4, 5.15 and 6.4.1-6.4.4, and
  FAILED in 7.1.5 (it answers a close in the middle of a fragmented message with 1002, where Autobahn wants
  the 1000 echoed; RFC 6455 does not require the echo).

The run fails (exit 1) on any other FAILED or UNIMPLEMENTED case, on a case within the limit that is not
OK, on a 1009 case whose payload fits the limit, or on a traceback in the echo server's log (no client input
may put one there). The HTML report is in ``--outdir`` (default artifacts/autobahn/reports/index.html).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
AGENT = "hub-echo"
CATEGORIES = ("OK", "NON-STRICT", "INFORMATIONAL", "FAILED", "UNIMPLEMENTED")
OVER_LIMIT = "1009 over limit"
# A known defect, reported: the client was still sending the oversized message when the hub failed the connection,
# and uvicorn closes the socket with that message unread, so the kernel resets it; a client such as Autobahn's
# (Twisted) then drops the 1009 it has not read yet. tests/e2e/test_autobahn.py holds the deterministic
# reproduction (an xfail until hub/server.py's protocol half-closes and keeps reading: a lingering close).
RESET_OVER_LIMIT = "reset before 1009"
# python-websockets/websockets, compliance/README.rst, "Conformance notes"
DOCUMENTED_NON_STRICT = frozenset(
    ("3.2", "3.3", "4.1.3", "4.1.4", "4.2.3", "4.2.4", "5.15", "6.4.1", "6.4.2", "6.4.3", "6.4.4")
)
DOCUMENTED_FAILED = {"7.1.5": "websockets closes with 1002 on a close inside a fragmented message"}
PAYLOAD = re.compile(r"length (\d+) \* 2\*\*(\d+)")


@dataclasses.dataclass(frozen=True)
class Case:
    """One case's outcome as Autobahn judged it, and how this run counts it."""

    id: str
    behavior: str
    behavior_close: str
    close_code: int | None
    payload: int | None  # message size named in the description, if any
    result: str  # one of CATEGORIES, or OVER_LIMIT
    unexpected: str | None  # why it fails this run, or None

    @property
    def category(self) -> str:
        return self.id.split(".")[0]


def case_sort_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case_id.split("."))


def judge(case_id: str, outcome: dict[str, Any], description: str, max_frame_bytes: int) -> Case:
    behavior, behavior_close = outcome["behavior"], outcome["behaviorClose"]
    close_code = outcome.get("remoteCloseCode")
    match = PAYLOAD.search(description)
    payload = int(match.group(1)) * 2 ** int(match.group(2)) if match else None
    result = behavior
    if behavior in ("OK", "NON-STRICT", "INFORMATIONAL") and behavior_close in ("FAILED", "WRONG CODE", "UNCLEAN"):
        result = "FAILED"
    unexpected = None
    if result == "FAILED" and close_code == 1009 and payload is not None and payload > max_frame_bytes:
        result = OVER_LIMIT
    elif result == "FAILED" and close_code is None and payload is not None and payload > max_frame_bytes:
        result = RESET_OVER_LIMIT
    elif result == "FAILED" and case_id not in DOCUMENTED_FAILED:
        unexpected = f"FAILED ({behavior}/{behavior_close}, close {close_code})"
    elif result == "UNIMPLEMENTED":
        unexpected = "UNIMPLEMENTED"
    elif close_code == 1009 and payload is not None and payload <= max_frame_bytes:
        unexpected = f"closed 1009 although its {payload}-byte message fits max_frame_bytes"
    elif result not in (*CATEGORIES, OVER_LIMIT, RESET_OVER_LIMIT):
        unexpected = f"unknown result {result}"
    return Case(case_id, behavior, behavior_close, close_code, payload, result, unexpected)


def read_results(reports: Path, max_frame_bytes: int) -> list[Case]:
    index = json.loads((reports / "index.json").read_text())[AGENT]
    cases = []
    for case_id, outcome in index.items():
        detail = json.loads((reports / outcome["reportfile"]).read_text())
        cases.append(judge(case_id, outcome, detail.get("description", ""), max_frame_bytes))
    return sorted(cases, key=lambda case: case_sort_key(case.id))


def table(cases: list[Case]) -> str:
    columns = (*CATEGORIES, OVER_LIMIT, RESET_OVER_LIMIT)
    rows: dict[str, Counter[str]] = {}
    for case in cases:
        rows.setdefault(case.category, Counter())[case.result] += 1
    total: Counter[str] = Counter(case.result for case in cases)
    head = ["category", *columns, "cases"]
    lines = [head]
    for category in sorted(rows, key=int):
        counts = rows[category]
        lines.append([category, *(str(counts[c]) for c in columns), str(sum(counts.values()))])
    lines.append(["all", *(str(total[c]) for c in columns), str(len(cases))])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(cell.rjust(widths[i]) for i, cell in enumerate(line)) for line in lines)


def start_echo(env: dict[str, str], log: IO[bytes]) -> tuple[subprocess.Popen[bytes], int]:
    argv = [sys.executable, str(HERE / "echo.py"), "--port", "0"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, env=env, cwd=ROOT, start_new_session=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()  # "ready <port> ...", printed once the socket listens
    if not line.startswith("ready "):
        proc.kill()
        proc.wait()
        raise SystemExit(f"error: the echo server did not start (see {log.name})")
    return proc, int(line.split()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wstest_version(wstest: str) -> str:
    """ "25.10.1 (Autobahn 0.10.9)" from ``wstest -a``."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([wstest, "-a"], capture_output=True, text=True, timeout=60).stdout
        suite = re.search(r"AutobahnTestSuite\s+([\w.]+)", out)
        library = re.search(r"Autobahn\s+([\w.]+)", out)
        if suite:
            return suite.group(1) + (f" (Autobahn {library.group(1)})" if library else "")
    return "(version unknown)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wstest", default=str(ROOT / ".venv-autobahn/py27/bin/wstest"), help="the fuzzing client")
    parser.add_argument("--outdir", type=Path, default=ROOT / "artifacts/autobahn", help="spec, logs and reports")
    parser.add_argument("--cases", help="comma-separated case patterns (default: the config's, every case)")
    parser.add_argument("--max-frame-bytes", type=int, default=None, help="HUB_MAX_FRAME_BYTES (default: the hub's)")
    parser.add_argument("--timeout", type=float, default=900.0, help="bound on the fuzzing client's run, s")
    parser.add_argument("--json", dest="json_file", type=Path, help="also write the per-case results here")
    args = parser.parse_args()

    from hub.settings import HubSettings

    wstest = os.path.abspath(args.wstest)  # it runs in the output directory
    env = {key: value for key, value in os.environ.items() if not key.startswith("HUB_") or key == "HUB_LOOP"}
    env["HUB_LOG_LEVEL"] = "warning"
    if args.max_frame_bytes is not None:
        env["HUB_MAX_FRAME_BYTES"] = str(args.max_frame_bytes)
    max_frame_bytes = HubSettings(max_frame_bytes=args.max_frame_bytes or HubSettings().max_frame_bytes).max_frame_bytes
    outdir: Path = args.outdir.resolve()
    reports = outdir / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    for old in reports.glob("*"):
        old.unlink()
    spec = json.loads((HERE / "fuzzingclient.json").read_text())
    if args.cases:
        spec["cases"] = [pattern.strip() for pattern in args.cases.split(",") if pattern.strip()]

    echo_log_path = outdir / "echo.log"
    with open(echo_log_path, "wb") as echo_log:
        echo, port = start_echo(env, echo_log)
        try:
            spec["servers"] = [{"agent": AGENT, "url": f"ws://127.0.0.1:{port}"}]
            spec["outdir"] = str(reports)
            (outdir / "fuzzingclient.json").write_text(json.dumps(spec, indent=2) + "\n")
            started = time.monotonic()
            with open(outdir / "wstest.log", "wb") as wstest_log:
                try:
                    run = subprocess.run(
                        [wstest, "-m", "fuzzingclient", "-s", str(outdir / "fuzzingclient.json")],
                        stdout=wstest_log,
                        stderr=subprocess.STDOUT,
                        cwd=outdir,
                        timeout=args.timeout,
                        check=False,
                    )
                except FileNotFoundError:
                    print(f"error: no fuzzing client at {wstest}; run scripts/autobahn", file=sys.stderr)
                    return 2
                except subprocess.TimeoutExpired:
                    print(f"error: the fuzzing client ran longer than {args.timeout:.0f} s", file=sys.stderr)
                    return 1
            elapsed = time.monotonic() - started
        finally:
            stop(echo)
    if run.returncode != 0 or not (reports / "index.json").exists():
        print(f"error: wstest exited with {run.returncode}; see {outdir / 'wstest.log'}", file=sys.stderr)
        return 1

    cases = read_results(reports, max_frame_bytes)
    server_log = echo_log_path.read_text(errors="replace")
    tracebacks = server_log.count("Traceback (most recent call last)")
    version = wstest_version(wstest)
    print(f"Autobahn|Testsuite fuzzing client {version} against {AGENT} (benchmarks/autobahn/echo.py)")
    excluded = ", ".join(spec["exclude-cases"])
    print(f"max_frame_bytes {max_frame_bytes}, cases {', '.join(spec['cases'])}, excluded {excluded}")
    print(f"{len(cases)} cases in {elapsed:.1f} s\n")
    print(table(cases))
    print()
    for case in cases:
        if case.id in DOCUMENTED_FAILED and case.result == "FAILED":
            reason = DOCUMENTED_FAILED[case.id]
            print(f"FAILED, documented by websockets: {case.id}: {reason} (close {case.close_code})")
    non_strict = [case.id for case in cases if case.result == "NON-STRICT"]
    documented = [case_id for case_id in non_strict if case_id in DOCUMENTED_NON_STRICT]
    if documented:
        print(f"NON-STRICT, documented by websockets: {', '.join(documented)}")
    others = [case_id for case_id in non_strict if case_id not in DOCUMENTED_NON_STRICT]
    if others:
        print(f"NON-STRICT, not in websockets' notes (a pass for Autobahn): {', '.join(others)}")
    over = [case for case in cases if case.result == OVER_LIMIT]
    if over:
        print(f"closed with 1009, message over max_frame_bytes ({max_frame_bytes}): {len(over)} cases, "
              f"{over[0].id} .. {over[-1].id}")  # fmt: skip
    resets = [case.id for case in cases if case.result == RESET_OVER_LIMIT]
    if resets:
        print(
            f"KNOWN DEFECT, reported: {len(resets)} over-limit cases ({', '.join(resets)}) saw a TCP reset instead of "
            "the 1009 (the hub closes with the rest of the message unread; see tests/e2e/test_autobahn.py)"
        )
    unexpected = [case for case in cases if case.unexpected]
    for case in unexpected:
        print(f"UNEXPECTED {case.id}: {case.unexpected}")
    if tracebacks:
        print(f"UNEXPECTED: the echo server logged {tracebacks} traceback(s); see {echo_log_path}")
    print(f"\nreport: {reports / 'index.html'}")
    if args.json_file:
        summary = {
            "version": version,
            "max_frame_bytes": max_frame_bytes,
            "seconds": round(elapsed, 1),
            "tracebacks": tracebacks,
            "server_log": str(echo_log_path),
            "cases": [dataclasses.asdict(case) | {"category": case.category} for case in cases],
        }
        args.json_file.write_text(json.dumps(summary, indent=1) + "\n")
    ok = not unexpected and not tracebacks
    print("PASS: no failure beyond the ones websockets documents" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
