"""The benchmarks' measuring helpers: CPU accounting from /proc and profile summaries (no stores)."""

from __future__ import annotations

import os
import time

from bench.procstat import TICKS_PER_S, CpuMeter, ProcessGroup, Snapshot, parse_stat, read_ticks, self_group
from bench.pyspy import top_frames


def test_parse_stat_survives_a_command_name_with_spaces_and_parentheses():
    fields = ["S"] + [str(i) for i in range(4, 14)] + ["70", "30", "5", "7"] + ["20"] * 30
    raw = b"1234 (odd) name (x)) " + " ".join(fields).encode()
    assert parse_stat(raw) == (100, 12)


def test_own_cpu_time_grows_while_this_process_computes():
    before = read_ticks(os.getpid())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    after = read_ticks(os.getpid())
    assert after[0] - before[0] >= 0.1 * TICKS_PER_S


def test_a_gone_process_reads_as_nothing():
    assert read_ticks(2**22 + 12345) is None
    assert ProcessGroup("gone", [2**22 + 12345]).ticks() == 0


def test_report_gives_milliseconds_per_request_by_group_and_the_rest_of_the_machine():
    meter = CpuMeter({"api": self_group("api"), "remote": None})
    before = Snapshot(at=0.0, machine=0, steal=0, groups={"api": 0})
    after = Snapshot(at=2.0, machine=3 * TICKS_PER_S, steal=TICKS_PER_S // 10, groups={"api": 2 * TICKS_PER_S})
    report = meter.report(before, after, requests=100)
    assert report["cpu_ms_per_request"] == {"api": 20.0, "remote": None, "total": 20.0}
    assert report["other_ms_per_request"] == 10.0  # 3 s busy on the machine, 2 s of it ours
    assert report["steal_ms_per_request"] == 1.0
    assert report["cores_busy"] == {"groups": 1.0, "machine": 1.5}


def test_top_frames_count_self_time_at_the_leaf_and_inclusive_time_once_per_stack(tmp_path):
    collapsed = tmp_path / "profile.txt"
    collapsed.write_text(
        'process 1:"python -m service.cli serve";main (/repo/service/api/app.py:10);embed (/repo/vectors/embedder.py:5) 30\n'
        'process 1:"python -m service.cli serve";main (/repo/service/api/app.py:10);embed (/repo/vectors/embedder.py:6) 10\n'
        'process 2:"python";main (/repo/service/api/app.py:11);fetch (/x/site-packages/asyncpg/connection.py:9) 60\n'
        "recurse (/repo/a.py:1);recurse (/repo/a.py:2) 5\n"
    )
    top = top_frames(collapsed, root="/repo")
    assert top["samples"] == 105
    assert top["self"][0] == {"frame": "fetch (asyncpg/connection.py)", "samples": 60, "share": round(60 / 105, 4)}
    assert top["self"][1]["frame"] == "embed (vectors/embedder.py)" and top["self"][1]["samples"] == 40
    inclusive = {row["frame"]: row["samples"] for row in top["inclusive"]}
    assert inclusive["main (service/api/app.py)"] == 100
    assert inclusive["recurse (a.py)"] == 5  # a recursive frame counts once per stack


def test_each_phase_gets_questions_no_earlier_phase_asked():
    from bench.latency import QuestionStream

    stream = QuestionStream([f"q{i}" for i in range(10)])
    first, second = stream.take(4), stream.take(4)
    assert first == ["q0", "q1", "q2", "q3"] and second == ["q4", "q5", "q6", "q7"]


def test_the_embed_meter_times_every_call_labels_its_caller_and_replays_it():
    import asyncio

    import numpy as np

    from bench.ingest import EmbedMeter

    class FakeEmbedder:
        def __init__(self):
            self.seen: list[tuple[list[str], int]] = []

        def embed(self, texts, *, batch_size=32, query=False):
            self.seen.append((list(texts), batch_size))
            return np.zeros((len(texts), 384), dtype=np.float32)

        async def aembed(self, texts):
            return await asyncio.to_thread(self.embed, texts)

    embedder = FakeEmbedder()
    meter = EmbedMeter(embedder)

    async def prepare():
        await embedder.aembed(["user: hello", "assistant: hi"])
        embedder.embed(["direct"], batch_size=8)

    asyncio.run(prepare())
    meter.restore()
    assert [(c[1], c[2]) for c in meter.calls] == [(["user: hello", "assistant: hi"], 32), (["direct"], 8)]
    sites = meter.by_site()
    assert [s.split(":")[0] for s in sites] == ["prepare", "direct"]
    embedder.seen.clear()
    meter.replay()
    assert embedder.seen == [(["user: hello", "assistant: hi"], 32), (["direct"], 8)]
    assert "embed" not in vars(embedder)  # restored: the class's own method again
