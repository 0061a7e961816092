"""A sampled profile of a running server with py-spy (the ``bench`` extra), and its top frames.

``py-spy record --pid <pid> --subprocesses --format raw`` samples the server and every
process under it (uvicorn's supervisor and its workers) at ``rate`` Hz from outside, with
no change to the service, until it is stopped with SIGINT. The raw format is collapsed
stacks (``frame;frame;… count``, one line per distinct stack), which speedscope.app and
``flamegraph.pl`` read as they are. Only threads that are running are sampled (py-spy's
default), so a frame's *self* share is its share of the server's on-CPU Python samples;
time inside a C extension (ONNX Runtime, asyncpg's protocol) is charged to the Python
line that called it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)$")


def py_spy_path() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


class PySpy:
    def __init__(self, pid: int, out: Path, *, rate: int = 100, nonblocking: bool = True) -> None:
        self.out = out
        self.log = out.with_suffix(".py-spy.log")
        exe = py_spy_path()
        if exe is None:
            raise RuntimeError("py-spy is not installed (uv sync --extra bench)")
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            exe,
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--format",
            "raw",
            "--rate",
            str(rate),
            "-o",
            str(out),
        ]
        if nonblocking:
            cmd.append("--nonblocking")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        time.sleep(1.0)  # attach; a refused ptrace ends it at once
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"py-spy exited at once ({self.proc.returncode}): {self.log.read_text(errors='replace')[-500:]}"
            )

    def stop(self) -> Path:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.out.exists():
            raise RuntimeError(f"py-spy wrote no profile: {self.log.read_text(errors='replace')[-500:]}")
        return self.out


def _frame_name(frame: str, root: str) -> str:
    """``context (/repo/service/retriever.py:123)`` -> ``context (service/retriever.py)``."""
    frame = _LINE.sub(")", frame.strip())
    for prefix in (root.rstrip("/") + "/", "site-packages/"):
        at = frame.find(prefix)
        if at >= 0:
            frame = frame[: frame.find("(") + 1] + frame[at + len(prefix) :]
    return frame


def top_frames(collapsed: Path, n: int = 20, root: str | None = None) -> dict:
    """Top ``n`` functions by self samples and by inclusive samples, from collapsed stacks."""
    root = root or os.getcwd()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        # py-spy --subprocesses puts a "process <pid>:<cmdline>" frame at the root
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")]
        if not frames:
            continue
        names = [_frame_name(f, root) for f in frames]
        total += samples
        own[names[-1]] += samples
        for name in set(names):
            inclusive[name] += samples

    def rows(counter: Counter[str]) -> list[dict]:
        return [{"frame": name, "samples": s, "share": round(s / total, 4)} for name, s in counter.most_common(n)]

    return {"samples": total, "self": rows(own), "inclusive": rows(inclusive)}


def describe(top: dict, n: int = 20) -> str:
    lines = [f"profile: {top['samples']} on-CPU samples; top {n} frames by self time:"]
    for row in top["self"][:n]:
        lines.append(f"  {100 * row['share']:5.1f}%  {row['samples']:7d}  {row['frame']}")
    return "\n".join(lines)
