"""Bad samples: skipped, counted, logged with their key, and fatal past the domain's `maxBadSampleFraction`."""

from __future__ import annotations

from dataclasses import dataclass

from mixtura_jobs.data.formats import BadSample


class TooManyBadSamples(RuntimeError):
    """More of a domain's samples are unreadable than its `maxBadSampleFraction` allows."""


@dataclass
class BadSampleTally:
    domain: str
    max_fraction: float
    seen: int = 0
    bad: int = 0
    first: BadSample | None = None

    def good(self) -> None:
        self.seen += 1

    def skip(self, sample: BadSample) -> None:
        self.seen += 1
        self.bad += 1
        self.first = self.first or sample
        print(f"skipped bad sample domain={self.domain} key={sample.key}: {sample.reason}", flush=True)

    def check(self) -> None:
        """Fail once the bad share of the samples seen exceeds the domain's allowance."""
        if self.first is not None and self.bad > self.max_fraction * self.seen:
            raise TooManyBadSamples(
                f"domain {self.domain}: {self.bad} of {self.seen} samples read are bad, more than "
                f"maxBadSampleFraction {self.max_fraction}; the first is {self.first.key} ({self.first.reason})"
            )

    def metrics(self) -> dict:
        return {
            "samplesRead": self.seen,
            "badSamples": self.bad,
            "firstBadSample": None if self.first is None else self.first.key,
        }
