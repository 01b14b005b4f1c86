"""Shared nagiosplugin pieces: contexts that judge findings, and the status-line summary.

A probe's resource yields metrics; numbers go to `Scalar` contexts (judged by `-w/-c`
ranges, and always perfdata), facts such as "cluster status is non-Primary" go to a
`Rule` context whose function names the state and the reason. `Summary` puts the
problems on the status line, worst first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import nagiosplugin
from nagiosplugin.state import Critical, Ok, Unknown, Warn

__all__ = ["Critical", "Finding", "Ok", "Rule", "Scalar", "Summary", "Unknown", "Warn", "check", "finding"]

# A Finding is (state, text): what a rule concluded about one observed value.
Finding = tuple[Any, str]


class Rule(nagiosplugin.Context):  # type: ignore[misc]  # nagiosplugin is untyped
    """A context that judges a metric's value with a function returning (state, text)."""

    def __init__(self, name: str, judge: Callable[[Any], Finding] | None = None) -> None:
        super().__init__(name)
        self.judge = judge or (lambda value: value)

    def evaluate(self, metric: nagiosplugin.Metric, resource: Any) -> nagiosplugin.Result:
        """The judge's state, with its text as the hint."""
        state, text = self.judge(metric.value)
        return nagiosplugin.Result(state, text, metric)

    def describe(self, metric: nagiosplugin.Metric) -> None:
        """No description: the judge's text says it all."""
        return None


def finding(name: str, state: Any, text: str) -> nagiosplugin.Metric:
    """A metric that carries a ready-made finding to the `finding` Rule context."""
    return nagiosplugin.Metric(name, (state, text), context="finding")


class Scalar(nagiosplugin.ScalarContext):  # type: ignore[misc]  # nagiosplugin is untyped
    """A ScalarContext whose violation text names the metric and the range it left."""

    def __init__(
        self, name: str, warning: str | None = None, critical: str | None = None, label: str | None = None
    ) -> None:
        super().__init__(name, warning or "", critical or "")
        self.label = label

    def evaluate(self, metric: nagiosplugin.Metric, resource: Any) -> nagiosplugin.Result:
        """Critical/warning when outside the range, with a readable reason."""
        label = self.label or metric.name
        for state, bound in ((Critical, self.critical), (Warn, self.warning)):
            if not bound.match(metric.value):
                return nagiosplugin.Result(state, f"{label} {metric.valueunit} outside {bound}", metric)
        return nagiosplugin.Result(Ok, f"{label} {metric.valueunit}", metric)

    def describe(self, metric: nagiosplugin.Metric) -> None:
        """No description: the evaluate hint says it all."""
        return None


class Summary(nagiosplugin.Summary):  # type: ignore[misc]  # nagiosplugin is untyped
    """OK: the probe's own sentence; otherwise every non-OK result, worst first."""

    def __init__(self, ok_text: Callable[[nagiosplugin.Results], str], limit: int = 6) -> None:
        self.ok_text = ok_text
        self.limit = limit

    def ok(self, results: nagiosplugin.Results) -> str:
        """The sentence for a healthy target."""
        return self.ok_text(results)

    def problem(self, results: nagiosplugin.Results) -> str:
        """Problems worst first (results iterate by decreasing significance), deduplicated."""
        texts: list[str] = []
        for result in results:
            text = str(result)
            if result.state != Ok and text and text not in texts:
                texts.append(text)
        shown = texts[: self.limit]
        more = len(texts) - len(shown)
        return "; ".join(shown) + (f"; and {more} more (-v)" if more else "")

    def verbose(self, results: nagiosplugin.Results) -> list[str]:
        """Unused: `runtime.render` prints every result with -v."""
        return []


def check(name: str, ok_text: Callable[[nagiosplugin.Results], str], *parts: Any) -> nagiosplugin.Check:
    """A probe's Check: its resource and contexts, then the `finding` Rule and the Summary every probe has."""
    return nagiosplugin.Check(*parts, Rule("finding"), Summary(ok_text), name=name)
