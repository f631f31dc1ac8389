"""Numerics verdicts of one config of one kernel, and the file that keeps them between runs.

A verdict is keyed by (kernel source hash, config, GPU name): a changed kernel, another
config or another GPU is checked anew. A verdict made under other thresholds or another
version of the kernel's cases is not reused.

The plugin ships the verdicts of the kernels it knows on the GPUs they were checked on
(`SHIPPED`, written by ``aoti-hooks sdpa-check --cache``): a cold machine with one of those GPUs
and those kernels' sources checks nothing. The user's file is read first; only it is written.
"""

from __future__ import annotations

import json
import os
import pathlib
import threading
from dataclasses import asdict, dataclass

MIN_COSINE = 0.999
MAX_ERROR = 0.05  # absolute, on outputs of unit-variance inputs (bf16 ulp near 2 is 0.016)


@dataclass(frozen=True)
class Verdict:
    """How one config did on every case: the worst cosine, the largest error, its shared memory."""

    passed: bool
    reason: str
    cosine: float | None = None
    max_error: float | None = None
    shared: int | None = None
    cases: int = 0
    min_cosine: float = MIN_COSINE
    max_error_bound: float = MAX_ERROR
    cases_version: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


SHIPPED = pathlib.Path(__file__).with_name("shipped_verdicts.json")


def cache_key(source_hash: str, config_key: str, gpu_name: str) -> str:
    return f"{source_hash}|{config_key}|{gpu_name}"


def default_cache_path() -> pathlib.Path:
    root = os.environ.get("AOTI_HOOKS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "aoti-hooks")
    return pathlib.Path(root) / "sdpa_configs.json"


class VerdictCache:
    """A JSON file of verdicts; written after every new verdict so an interrupted check keeps its work."""

    def __init__(self, path: "str | os.PathLike | None" = None, shipped: "str | os.PathLike | None" = SHIPPED):
        self.path = pathlib.Path(path) if path else default_cache_path()
        self._lock = threading.Lock()
        self._entries: dict[str, dict] = {}
        self._shipped: dict[str, dict] = {}
        self.shipped_used = 0  # verdicts read from the shipped file
        if self.path.exists():
            try:
                self._entries = json.loads(self.path.read_text())
            except (OSError, ValueError) as error:
                raise ValueError(f"the sdpa_configs cache {self.path} cannot be read ({error}); "
                                 f"delete it to check every config again") from None
        if shipped is not None and pathlib.Path(shipped).exists():
            self._shipped = json.loads(pathlib.Path(shipped).read_text())

    def get(self, key: str, min_cosine: float, max_error: float, cases_version: str = "") -> Verdict | None:
        """The stored verdict, unless it was made under other bounds or other cases."""
        for table in (self._entries, self._shipped):
            verdict = _usable(table.get(key), min_cosine, max_error, cases_version)
            if verdict is not None:
                self.shipped_used += table is self._shipped
                return verdict
        return None

    def put(self, key: str, verdict: Verdict) -> None:
        with self._lock:
            self._entries[key] = verdict.as_dict()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps(self._entries, indent=1, sort_keys=True))
            temporary.replace(self.path)

    def __len__(self) -> int:
        return len(self._entries)


def _usable(found, min_cosine: float, max_error: float, cases_version: str) -> Verdict | None:
    """``found`` as a verdict made under these bounds and cases, or None."""
    if not isinstance(found, dict):  # absent, or a note such as the "command" a committed cache carries
        return None
    try:
        verdict = Verdict(**found)
    except TypeError:  # written by another version of this plugin
        return None
    if (verdict.min_cosine, verdict.max_error_bound, verdict.cases_version) != (min_cosine, max_error, cases_version):
        return None
    return verdict
