"""The local trace viewer: recent traces and one trace as a timeline, served by the span sink.

Why not Arize Phoenix (measured, see docs/observability-cost-and-caches.md): a 624 MB
environment of its own, 16 s to start and 450 MB resident on this 2-core machine, for a stack
whose every other part starts in about a second. The span sink already receives every span;
these two pages show them: ``/`` lists the latest traces (root span, services, duration,
request id), ``/ui/{trace_id}`` draws the spans as bars with their GenAI facts (model, tokens,
cost, cache hits) and links to traces they link to (a human decision's own trace links to the
saga's). Production keeps Jaeger behind the collector (compose.yaml).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["recent_traces", "render_index", "render_trace"]

_FACTS = (
    ("gen_ai.request.model", "model"),
    ("gen_ai.usage.input_tokens", "in"),
    ("gen_ai.usage.output_tokens", "out"),
    ("platform.cost_usd", "$"),
    ("retrieval.cache_hit", "retrieval cache"),
    ("retrieval.embedding_cache_hit", "embedding cache"),
    ("platform.answer_cache_hit", "answer cache"),
    ("draft.kind", "draft"),
    ("approval.decision", "decision"),
)

_STYLE = """
body{font:13px system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;width:100%}td,th{padding:2px 6px;text-align:left;
border-bottom:1px solid #eee;white-space:nowrap}th{background:#f5f5f5}
.bar{position:relative;height:12px;background:#f0f0f0;min-width:320px}
.bar span{position:absolute;top:0;height:12px;background:#4a7bd0}
.err span{background:#c0392b}.facts{color:#555}a{color:#2456a6}
"""


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def recent_traces(spans: Iterable[Mapping[str, Any]], limit: int = 50) -> list[dict[str, Any]]:
    """One summary per trace, newest first: root span, services, duration, request id."""
    traces: dict[str, list[Mapping[str, Any]]] = {}
    for span in spans:
        traces.setdefault(str(span["trace_id"]), []).append(span)
    out = []
    for trace_id, group in traces.items():
        start = min(int(s["start_ns"]) for s in group)
        end = max(int(s["end_ns"]) for s in group)
        root = min(group, key=lambda s: (s.get("parent_span_id") is not None, int(s["start_ns"])))
        request_id = next(
            (
                (s.get("attributes") or {}).get("request_id")
                for s in group
                if (s.get("attributes") or {}).get("request_id")
            ),
            None,
        )
        out.append(
            {
                "trace_id": trace_id,
                "root": root["name"],
                "services": sorted({str(s["service"]) for s in group if s.get("service")}),
                "spans": len(group),
                "start_ns": start,
                "duration_ms": round((end - start) / 1e6, 1),
                "request_id": request_id,
            }
        )
    out.sort(key=lambda t: -int(t["start_ns"]))
    return out[:limit]


def render_index(traces: Sequence[Mapping[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td><a href='/ui/{html.escape(t['trace_id'])}'>{html.escape(t['trace_id'])}</a></td>"
        f"<td>{html.escape(str(t['root']))}</td><td>{html.escape(', '.join(t['services']))}</td>"
        f"<td>{t['spans']}</td><td>{t['duration_ms']}</td>"
        f"<td>{html.escape(str(t['request_id'] or ''))}</td></tr>"
        for t in traces
    )
    body = (
        "<h2>Recent traces</h2><p>Newest first; spans arrive about a second after they end."
        " JSON: <code>/traces/{trace_id}</code>.</p><table><tr><th>trace</th><th>root span</th>"
        f"<th>services</th><th>spans</th><th>ms</th><th>request</th></tr>{rows}</table>"
    )
    return _page("Traces", body)


def _depth(spans: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    parent = {str(s["span_id"]): s.get("parent_span_id") for s in spans}
    depths = {}
    for span_id in parent:
        depth, node, seen = 0, parent[span_id], set()
        while node in parent and node not in seen:
            seen.add(node)
            depth, node = depth + 1, parent[node]
        depths[span_id] = depth
    return depths


def render_trace(trace_id: str, spans: Sequence[Mapping[str, Any]]) -> str:
    if not spans:
        return _page(trace_id, f"<h2>No spans for {html.escape(trace_id)} (yet)</h2>")
    ordered = sorted(spans, key=lambda s: int(s["start_ns"]))
    t0 = int(ordered[0]["start_ns"])
    total = max(1, max(int(s["end_ns"]) for s in ordered) - t0)
    depths = _depth(ordered)
    rows = []
    for s in ordered:
        start, end = int(s["start_ns"]) - t0, int(s["end_ns"]) - t0
        attributes = s.get("attributes") or {}
        facts = " ".join(
            f"{label}={html.escape(str(attributes[key]))}"
            for key, label in _FACTS
            if key in attributes
        )
        links = " ".join(
            f"<a href='/ui/{html.escape(str(link['trace_id']))}'>linked trace</a>"
            for link in s.get("links") or []
        )
        error = (s.get("status") or {}).get("code") == "ERROR"
        left, width = 100 * start / total, max(0.3, 100 * (end - start) / total)
        indent = "&nbsp;" * 3 * depths.get(str(s["span_id"]), 0)
        rows.append(
            f"<tr><td>{indent}{html.escape(str(s['name']))}</td>"
            f"<td>{html.escape(str(s.get('service') or ''))}</td>"
            f"<td>{start / 1e6:.1f}</td><td>{(end - start) / 1e6:.1f}</td>"
            f"<td><div class='bar{' err' if error else ''}'>"
            f"<span style='left:{left:.2f}%;width:{width:.2f}%'></span></div></td>"
            f"<td class=facts>{facts} {links}</td></tr>"
        )
    body = (
        f"<p><a href='/'>all traces</a></p><h2>Trace {html.escape(trace_id)}</h2>"
        f"<p>{len(ordered)} spans, {total / 1e6:.1f} ms</p><table><tr><th>span</th>"
        "<th>service</th><th>+ms</th><th>ms</th><th>timeline</th><th>facts</th></tr>"
        f"{''.join(rows)}</table>"
    )
    return _page(f"Trace {trace_id}", body)
