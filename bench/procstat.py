"""CPU time by process group, read from ``/proc``: where a benchmark's CPU goes.

On two shared cores, throughput is decided by CPU per request, not by latency: this
module reads ``utime + stime`` (``/proc/<pid>/stat``, in clock ticks of
``SC_CLK_TCK``) of named process groups before and after a phase and turns the
difference into milliseconds per request.

A group is one or more root processes and all their live descendants. Children that
exit during a phase (a PostgreSQL backend whose connection closed) are still counted:
their CPU moves into the parent's ``cutime + cstime`` when the parent reaps them, and
the roots' reaped-children time is part of each reading. The machine's busy time
(``/proc/stat``) is read with every snapshot too, so CPU spent by anything outside the
groups (other work on a shared machine, a profiler) shows up as ``other``, and CPU the
hypervisor gave to other guests as ``steal``: both say how noisy the run was.

Finding the processes:

* the API: the pid of ``loftmem serve`` (the uvicorn supervisor) and its children;
* PostgreSQL: the parent of a backend (``pg_backend_pid()``) is the postmaster; the
  group is the postmaster and every child (backends, checkpointer, autovacuum, …);
* Neo4j: the process listening on the Bolt port (a JVM: one process, many threads);
* the load generator: this process alone (its own threads included, children not).

A server that is not on this machine (``DATABASE_URL`` / ``NEO4J_URI`` pointing
elsewhere) has no group: its CPU is reported as ``null``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import psutil

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def parse_stat(raw: bytes) -> tuple[int, int]:
    """(utime + stime, cutime + cstime) from the text of ``/proc/<pid>/stat``."""
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = raw[raw.rindex(b")") + 2 :].split()
    # fields[0] is field 3 (state); utime, stime, cutime, cstime are fields 14-17
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return utime + stime, cutime + cstime


def read_ticks(pid: int) -> tuple[int, int] | None:
    """(own utime + stime, reaped children's cutime + cstime) of ``pid``, in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return parse_stat(f.read())
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def machine_ticks() -> tuple[int, int]:
    """(busy, steal): all CPUs' non-idle time since boot and the time the hypervisor gave
    to other guests (``/proc/stat``), in clock ticks. Steal is not counted as busy."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice: already in user]
    return sum(values[:7]) - values[3] - values[4], values[7]


@dataclass
class ProcessGroup:
    """A named set of processes: ``roots`` and (with ``children``) their descendants."""

    name: str
    roots: list[int]
    children: bool = True

    def ticks(self) -> int:
        total = 0
        for root in self.roots:
            own = read_ticks(root)
            if own is None:
                continue
            total += own[0]
            if not self.children:
                continue
            total += own[1]
            try:
                kids = psutil.Process(root).children(recursive=True)
            except psutil.NoSuchProcess:
                kids = []
            for kid in kids:
                got = read_ticks(kid.pid)
                if got is not None:
                    # a grandchild's reaped children are counted through its own cutime
                    total += got[0] + got[1]
        return total

    def pids(self) -> list[int]:
        out: list[int] = []
        for root in self.roots:
            try:
                proc = psutil.Process(root)
                out += [root] + ([p.pid for p in proc.children(recursive=True)] if self.children else [])
            except psutil.NoSuchProcess:
                pass
        return out


@dataclass
class Snapshot:
    at: float
    machine: int
    steal: int
    groups: dict[str, int] = field(default_factory=dict)


class CpuMeter:
    """Snapshots of the groups' CPU; :meth:`report` turns two into per-request figures.

    Groups given as ``None`` (a server not on this machine) are reported as ``null``."""

    def __init__(self, groups: dict[str, ProcessGroup | None]) -> None:
        self.groups = groups

    def snapshot(self) -> Snapshot:
        snap = Snapshot(time.perf_counter(), *machine_ticks())
        for name, group in self.groups.items():
            if group is not None:
                snap.groups[name] = group.ticks()
        return snap

    def report(self, before: Snapshot, after: Snapshot, requests: int) -> dict:
        wall = after.at - before.at
        per_request: dict[str, float | None] = {}
        total_ms = 0.0
        for name in self.groups:
            if name not in before.groups or name not in after.groups:
                per_request[name] = None
                continue
            ms = (after.groups[name] - before.groups[name]) * 1000 / TICKS_PER_S
            total_ms += ms
            per_request[name] = round(ms / max(requests, 1), 2)
        per_request["total"] = round(total_ms / max(requests, 1), 2)
        machine_ms = (after.machine - before.machine) * 1000 / TICKS_PER_S
        steal_ms = (after.steal - before.steal) * 1000 / TICKS_PER_S
        return {
            "requests": requests,
            "wall_s": round(wall, 2),
            "cpu_ms_per_request": per_request,
            # CPU the machine spent outside these groups (other tenants, a profiler, the kernel)
            "other_ms_per_request": round(max(machine_ms - total_ms, 0.0) / max(requests, 1), 2),
            # CPU time the hypervisor gave to other guests while this VM wanted it (a noisy host)
            "steal_ms_per_request": round(steal_ms / max(requests, 1), 2),
            "cores_busy": {
                "groups": round(total_ms / 1000 / wall, 2) if wall > 0 else None,
                "machine": round(machine_ms / 1000 / wall, 2) if wall > 0 else None,
            },
        }


def describe(phase: str, report: dict, unit: str = "request") -> str:
    """One stderr line: ``cpu phase: api 9.10 + postgres 3.20 + … = 15.00 CPU ms/request (…)``."""
    parts = [
        f"{k} {v:.2f}" if v is not None else f"{k} n/a" for k, v in report["cpu_ms_per_request"].items() if k != "total"
    ]
    return (
        f"cpu {phase}: {' + '.join(parts)} = {report['cpu_ms_per_request']['total']:.2f} CPU ms/{unit} "
        f"({report['requests']} {unit}s in {report['wall_s']} s; cores busy: these processes "
        f"{report['cores_busy']['groups']}, whole machine {report['cores_busy']['machine']}; "
        f"other processes {report['other_ms_per_request']:.2f}, steal {report['steal_ms_per_request']:.2f} ms/{unit})"
    )


async def postgres_group(conn) -> ProcessGroup | None:
    """The postmaster (parent of this connection's backend) and its children, if local."""
    backend = await conn.fetchval("SELECT pg_backend_pid()")
    try:
        postmaster = psutil.Process(backend).parent()
    except psutil.NoSuchProcess:
        return None  # the server runs on another machine (or in another pid namespace)
    if postmaster is None or "postgres" not in postmaster.name():
        return None
    return ProcessGroup("postgres", [postmaster.pid])


def neo4j_group(uri: str) -> ProcessGroup | None:
    """The process listening on the Bolt port of ``uri``, if it is on this machine."""
    parts = urlsplit(uri)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return None
    port = parts.port or 7687
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return ProcessGroup("neo4j", [conn.pid])
    return None


def self_group(name: str = "loadgen") -> ProcessGroup:
    """This process alone (all its threads), not its children (the API server is one)."""
    return ProcessGroup(name, [os.getpid()], children=False)
