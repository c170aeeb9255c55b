"""The fix-strategy interface: what a strategy sees (FixWork) and what it proposes (Candidate)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from agent.phases.diagnosis.pytest_exec import Frame
from agent.records import Anomaly, CodeLocation, Diagnosis, FixType

Line = tuple[str, int]


@dataclass(frozen=True)
class Candidate:
    """One proposed edit: new full texts of the files it changes (None deletes a file)."""

    strategy: str
    fix_type: FixType
    description: str
    edits: Mapping[str, str | None]
    cost: int = 0  # cheaper candidates are tried first within a strategy

    def key(self) -> tuple[tuple[str, str | None], ...]:
        """Identity of the edit, for de-duplication across strategies."""
        return tuple(sorted(self.edits.items(), key=lambda kv: kv[0]))


@dataclass(frozen=True)
class FixWork:
    """Everything strategies read; built by loadDiagnosis, never touched by strategies."""

    anomaly: Anomaly
    diagnosis: Diagnosis
    sources: Mapping[str, str]  # project files at the base commit, repository-relative
    suspicious: tuple[Line, ...] = ()  # best first
    frames: tuple[Frame, ...] = ()  # project frames of the failure, innermost last
    exception: str = ""  # exception type of the failure, '' for assertion failures
    culprit_diff: str = ""  # `git show` of the culprit commit
    hot: tuple[CodeLocation, ...] = ()  # functions whose time grew (performance)
    observations: Mapping[str, str] = field(default_factory=dict)  # "file::func" -> repr
    llm_reply: str = ""
    test_dir: str = "tests"
    prior: tuple[Candidate, ...] = ()  # code candidates, for strategies that follow them


class Strategy(Protocol):
    """A fix strategy: pure, deterministic, proposes candidates cheapest first."""

    name: str
    fix_type: FixType

    def propose(self, work: FixWork) -> Iterable[Candidate]: ...
