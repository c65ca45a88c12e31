"""bench/cpu.py: the CPU of the stack's other processes, read from /proc."""

from __future__ import annotations

import os
from pathlib import Path

from bench.cpu import pid_probe, processes_cpu_s


def test_a_process_counts_once_under_the_first_name_its_command_line_matches() -> None:
    mine = Path(f"/proc/{os.getpid()}/cmdline").read_bytes().split(b"\0")[0].decode()
    sum(range(2_000_000))  # some CPU of this process's own to find
    spent = processes_cpu_s({"this test": (mine,), "the same again": (mine,), "nobody": ("no such\0text",)})
    own = pid_probe(os.getpid())()
    assert own is not None and own > 0
    assert spent["this test"] >= own - 0.05  # this process, and any other of the same program
    assert spent["the same again"] == 0.0 and spent["nobody"] == 0.0
