"""CPU seconds and peak RSS of processes, sampled while a benchmark runs."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psutil


@dataclass
class Usage:
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0


@dataclass
class ProcessSampler:
    """Samples RSS every `interval_s` and CPU time at start and stop, per named PID."""

    pids: dict[str, int]
    interval_s: float = 0.1
    usage: dict[str, Usage] = field(default_factory=dict)
    _cpu0: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _procs(self) -> dict[str, psutil.Process]:
        return {name: psutil.Process(pid) for name, pid in self.pids.items()}

    def __enter__(self) -> ProcessSampler:
        procs = self._procs()
        for name, p in procs.items():
            t = p.cpu_times()
            self._cpu0[name] = t.user + t.system
            self.usage[name] = Usage()
        self._thread = threading.Thread(target=self._run, args=(procs,), daemon=True)
        self._thread.start()
        return self

    def _run(self, procs: dict[str, psutil.Process]) -> None:
        while not self._stop.is_set():
            for name, p in procs.items():
                try:
                    rss = p.memory_info().rss / 2**20
                except psutil.Error:
                    continue
                self.usage[name].peak_rss_mb = max(self.usage[name].peak_rss_mb, rss)
            time.sleep(self.interval_s)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        for name, p in self._procs().items():
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue
            self.usage[name].cpu_s = t.user + t.system - self._cpu0[name]
