"""Settings of the synthetic benchmark."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from lungprior.data.phantom.shortcuts import PLACEMENTS
from lungprior.errors import LungpriorError
from lungprior.labels import FINDINGS

GENERATOR_VERSION = 1
DEFAULT_PREVALENCE: dict[str, float] = {
    "Mass": 0.15,
    "Nodule": 0.15,
    "Pneumonia": 0.12,
    "Edema": 0.12,
    "Fibrosis": 0.12,
}
CONTEXT_MODEL = 2  # version of the outside-context dial (findings.py); part of a benchmark's recorded settings
FIELD_OF_VIEW_MM = 350.0  # width of the film, so pixel spacing = FIELD_OF_VIEW_MM / size


@dataclass(frozen=True)
class PhantomConfig:
    """Everything that determines a generated benchmark (same config, same bytes).

    `bias` / `test_bias` set the shortcut markers' strength (`val_bias`, when set, in the validation split
    instead of `bias`: an unbiased validation split beside a biased training split separates what a shortcut
    does to learning from what it does to checkpoint selection); `context` in [0, 1], independent of them, moves
    finding signal outside the tight lung outline (0: the original benchmark; see `findings` for each finding);
    `conspicuity` multiplies every lesion's density (1: the original benchmark; 2: twice the contrast, same
    lesion geometry, labels and markers), the difficulty dial that lets a short training run learn the lesions;
    `finding_conspicuity` sets it per finding instead (e.g. {"Nodule": 4}: small lesions made learnable without
    putting the large ones at ceiling). `markers` places the shortcut markers: "mixed" (two near the lungs, three
    far) or "far" (all five beyond a 20 mm loose mask), so a loose mask can keep context without a shortcut.
    """

    n: int = 2000
    size: int = 256
    seed: int = 0
    bias: float = 0.0
    test_bias: float = 0.0
    val_bias: float | None = None
    context: float = 0.0
    conspicuity: float = 1.0
    finding_conspicuity: dict[str, float] = field(default_factory=dict)
    markers: str = "mixed"
    prevalence: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_PREVALENCE))
    images_per_patient: float = 2.0
    val_fraction: float = 0.1
    test_fraction: float = 0.2

    def __post_init__(self) -> None:
        if self.n < 1:
            raise LungpriorError(f"--n must be at least 1, got {self.n}")
        if not 64 <= self.size <= 2048:
            raise LungpriorError(f"--size must be between 64 and 2048 pixels, got {self.size}")
        for name in ("bias", "test_bias", "val_bias", "context"):
            v = getattr(self, name)
            if v is not None and not 0.0 <= v <= 1.0:
                raise LungpriorError(f"--{name.replace('_', '-')} must be in [0, 1], got {v}")
        unknown = sorted(set(self.prevalence) - set(FINDINGS))
        if unknown:
            raise LungpriorError(f"unknown finding(s) in --prevalence: {', '.join(unknown)}; use {', '.join(FINDINGS)}")
        for k, v in self.prevalence.items():
            if not 0.0 <= v <= 0.9:
                raise LungpriorError(f"prevalence of {k} must be in [0, 0.9], got {v}")
        unknown = sorted(set(self.finding_conspicuity) - set(FINDINGS))
        if unknown:
            raise LungpriorError(f"unknown finding(s) in --finding-conspicuity: {', '.join(unknown)}")
        for name, v in {"--conspicuity": self.conspicuity, **self.finding_conspicuity}.items():
            if not 0.25 <= v <= 4.0:
                raise LungpriorError(f"conspicuity of {name} must be in [0.25, 4], got {v}")
        if self.markers not in PLACEMENTS:
            raise LungpriorError(f"--markers must be one of {', '.join(PLACEMENTS)}, got {self.markers!r}")
        if self.images_per_patient < 1.0:
            raise LungpriorError(f"images per patient must be >= 1, got {self.images_per_patient}")
        if not (
            0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1 and self.val_fraction + self.test_fraction < 1
        ):
            raise LungpriorError("val and test fractions must be in [0, 1) and sum to less than 1")

    @property
    def pixel_spacing_mm(self) -> float:
        return FIELD_OF_VIEW_MM / self.size

    def conspicuity_of(self, finding: str) -> float:
        return float(self.finding_conspicuity.get(finding, self.conspicuity))

    def prevalence_of(self, finding: str) -> float:
        return float(self.prevalence.get(finding, DEFAULT_PREVALENCE[finding]))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["prevalence"] = {k: self.prevalence_of(k) for k in FINDINGS}
        d["generator_version"] = GENERATOR_VERSION
        if self.context == 0.0:  # benchmarks without outside context keep their recorded settings unchanged
            d.pop("context")
        else:  # the dial's second definition (in-lung signal x (1 - c)): films made with the first differ
            d["context_model"] = CONTEXT_MODEL
        if self.val_bias is None:  # validation biased like training: recorded settings unchanged
            d.pop("val_bias")
        if self.conspicuity == 1.0:  # likewise for the original lesion contrast
            d.pop("conspicuity")
        if not self.finding_conspicuity:  # and for the new dials at their defaults
            d.pop("finding_conspicuity")
        if self.markers == "mixed":
            d.pop("markers")
        return d


def parse_prevalence(text: str | None) -> dict[str, float]:
    """Parse 'Mass=0.1,Nodule=0.2' (case-insensitive names) into a mapping; unset findings keep defaults."""
    return {**DEFAULT_PREVALENCE, **parse_per_finding(text, "--prevalence")}


def parse_per_finding(text: str | None, option: str) -> dict[str, float]:
    """Parse 'Mass=0.1,Nodule=0.2' (case-insensitive names) into {finding: value} for the findings named."""
    out: dict[str, float] = {}
    if not text:
        return out
    names = {k.lower(): k for k in FINDINGS}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        name = names.get(key.strip().lower())
        if not sep or name is None:
            raise LungpriorError(
                f"bad {option} item {item!r}: expected NAME=VALUE with NAME in {', '.join(FINDINGS)}"
            )
        try:
            out[name] = float(value)
        except ValueError:
            raise LungpriorError(f"bad {option} value {value!r} for {name}: not a number") from None
    return out
