"""Each step of demo and bench in a fresh process: its own peaks, its own Inductor cache, a log of its
own, and a line that says which phase its compile is in while it runs (`Progress`)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..package_loading import LIBSTDCXX

LIBSTDCXX_HINT = ("if it died loading an AOTI CUDA package, this machine's libstdc++ symbols may be bound from another "
                  f"library: export LD_PRELOAD={LIBSTDCXX} and run again (aoti-hooks doctor checks this)")


class StepFailed(RuntimeError):
    """A demo or bench step (a compile, a decode check) failed in its own process; the message names its log."""


class Progress:
    """One line per step with its elapsed seconds and the phase its compile is in (``watch``: the file its
    worker writes the phase to): updated in place on a terminal; in a log, a line when the phase changes."""

    def __init__(self, label: str, quiet: bool = False, watch: Path | None = None):
        self.label, self.quiet, self.watch = label, quiet, watch

    def __enter__(self):
        self.start = time.perf_counter()
        self.stop = threading.Event()
        self.terminal = sys.stderr.isatty()
        if not self.quiet and not self.terminal:
            print(f"{self.label} ...", file=sys.stderr, flush=True)
        if not self.quiet and (self.terminal or self.watch is not None):
            self.thread = threading.Thread(target=self._tick, daemon=True)
            self.thread.start()
        return self

    def _phase(self) -> str | None:
        try:
            return self.watch.read_text().strip() or None if self.watch is not None else None
        except OSError:  # not written yet
            return None

    def _tick(self):
        said = None
        while not self.stop.wait(0.5):
            phase, elapsed = self._phase(), time.perf_counter() - self.start
            if self.terminal:
                where = f"  {phase:<16}" if phase else ""
                print(f"\r{self.label} ... {elapsed:5.0f} s{where}", end="", file=sys.stderr, flush=True)
            elif phase is not None and phase != said:
                print(f"{self.label}: {phase} after {elapsed:.0f} s", file=sys.stderr, flush=True)
            said = phase

    def __exit__(self, kind, value, traceback):
        self.stop.set()
        if not self.quiet:
            end = "\r" if sys.stderr.isatty() else ""
            outcome = "FAILED after" if kind is not None else "done in"
            print(f"{end}{self.label} ... {outcome} {time.perf_counter() - self.start:.1f} s (whole step, in its own process)",
                  file=sys.stderr, flush=True)


def phase_file(folder: Path, name: str) -> Path:
    """Where step ``name``'s worker writes the phase its compile is in (`Progress` reads it)."""
    return folder / f"{name}.phase"


def run_in_worker(command: str, spec: dict, folder: Path, name: str, env: dict) -> dict:
    """Run ``aoti_hooks.tools.harness.worker <command>`` on ``spec`` in a fresh process (its own peaks, its own
    Inductor cache through ``env``); its JSON result, or `StepFailed` with the log's tail.
    The entry point demo, bench and the GPU scripts share."""
    spec = {**spec, "result": str(folder / f"{name}.result.json"), "phase_file": str(phase_file(folder, name))}
    spec_path = folder / f"{name}.spec.json"
    spec_path.write_text(json.dumps(spec))
    done = subprocess.run([sys.executable, "-X", "faulthandler", "-m", "aoti_hooks.tools.harness.worker", command, str(spec_path)],
                          env=env, capture_output=True, text=True)
    (folder / f"{name}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        hint = f"; {LIBSTDCXX_HINT}" if done.returncode == -signal.SIGSEGV and command == "outputs" else ""
        raise StepFailed(f"the {name} step failed (exit {done.returncode}){hint}; log: {folder / (name + '.log')}\n{tail}")
    return json.loads(Path(spec["result"]).read_text())
