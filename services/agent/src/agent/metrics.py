"""The agent's metrics (OpenTelemetry instruments, exported on ``/metrics``).

GenAI client metrics follow the semantic conventions (``gen_ai.client.token.usage``,
``gen_ai.client.operation.duration``) plus ``route`` (``routine`` / ``high_risk``, the router's
vocabulary); the rest are counters named ``agent.*``. Tool calls are timed by
``shared.tools.metrics`` (``platform.tool.duration``), cost by ``shared.pricing``.

Citations, from the platform's own check (``agent.citations``):
``agent.citations{verdict}``: each citation marker of a model's answer, ``supported`` when the
check kept it, ``unsupported`` when it removed it (outside the retrieved chunks, or its chunk
does not back the sentence): online citation accuracy is supported / all.
``agent.answers{cited}``: answers released as answers (not refusals, not actions), with at
least one citation or none: the citation rate.
"""

from __future__ import annotations

from opentelemetry import metrics

__all__ = ["AgentMetrics"]


class AgentMetrics:
    def __init__(self, meter: metrics.Meter) -> None:
        self.meter = meter
        self.citations = meter.create_counter(
            "agent.citations",
            unit="{citation}",
            description="Citation markers checked, by verdict (supported, unsupported).",
        )
        self.answers = meter.create_counter(
            "agent.answers",
            unit="{answer}",
            description="Answers drafted, by whether they cite a source (cited true/false).",
        )
        self.routes = meter.create_counter(
            "agent.routes", description="Requests routed, by route (routine, high_risk)."
        )
        self.fallbacks = meter.create_counter(
            "agent.model.fallbacks", description="Fallbacks from one model to the next, by reason."
        )
        self.retries = meter.create_counter(
            "agent.model.retries", description="Retries of a model call after a transient error."
        )
        self.circuit = meter.create_counter(
            "agent.model.circuit.transitions", description="Circuit-breaker state changes."
        )
        self.guardrails = meter.create_counter(
            "agent.guardrail.verdicts", description="Guardrail decisions, by stage and outcome."
        )
        self.tool_calls = meter.create_counter(
            "agent.tool.calls", description="Tool calls, by tool, status and origin."
        )
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Tokens used per model call.",
            explicit_bucket_boundaries_advisory=[1, 16, 64, 256, 1024, 4096, 16384, 65536],
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="Duration of model calls.",
            explicit_bucket_boundaries_advisory=[
                0.001,
                0.005,
                0.01,
                0.05,
                0.1,
                0.25,
                0.5,
                1,
                2.5,
                5,
                10,
                20,
                40,
            ],
        )

    def citation_check(self, supported: int, unsupported: int) -> None:
        if supported:
            self.citations.add(supported, {"verdict": "supported"})
        if unsupported:
            self.citations.add(unsupported, {"verdict": "unsupported"})

    def answered(self, *, cited: bool) -> None:
        self.answers.add(1, {"cited": "true" if cited else "false"})

    def guardrail(self, stage: str, outcome: str) -> None:
        self.guardrails.add(1, {"stage": stage, "outcome": outcome})
