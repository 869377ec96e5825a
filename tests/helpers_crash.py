"""A stand-in for the extraction task that takes its worker process down for one job id.

Imported by spawned worker processes, so it stays tiny (no test framework, no models).
"""

from __future__ import annotations

import os
from pathlib import Path

from edge.dataset.jobs import JobResult

CRASHING_ID = "boom"


def crash_or_succeed(job_id: str, video: Path, out_path: Path) -> JobResult:
    """Kill this process (as a native crash in a decoder would) for :data:`CRASHING_ID`, else succeed."""
    if job_id == CRASHING_ID:
        os._exit(70)
    return JobResult(job_id, frames=1)
