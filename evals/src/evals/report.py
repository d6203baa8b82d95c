"""The run's report: one model, written as JSON (eval-report.json) and Markdown (eval-report.md,
see :mod:`evals.report_writer`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from .baseline import BaselineDiff
from .gate import GateResult
from .scores import Scores
from .verdict import CaseVerdict

__all__ = ["EvalReport", "RunInfo"]

SCHEMA_VERSION = 1


class RunInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    started_at: str
    duration_s: float
    #: "local processes" or "testcontainers", and why that one.
    stack: str
    stack_reason: str
    dataset: str
    knowledge_base: str
    #: Documents the access oracle read from the knowledge base.
    documents: int
    concurrency: int
    case_timeout_s: float
    prices: str


class EvalReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    run: RunInfo
    #: Dataset lines skipped ("line 12: missing field 'kind'").
    dataset_errors: list[str]
    #: Knowledge-base files the ingestion could not read, each naming the file and why.
    ingest_failures: list[str]
    overall: Scores
    kinds: dict[str, Scores]
    gate: GateResult
    baseline: BaselineDiff | None
    cases: list[CaseVerdict]
