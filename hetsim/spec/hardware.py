"""Accelerator profiles: what one device can do, with where each figure comes from.

A profile lives in ``hardware_profiles/<name>.yaml``. Every figure is either a plain value, read
as taken from the vendor's datasheet, or a mapping ``{value, confidence, note, source}`` for
figures that are not (third-party pages, measurements, our estimates, assumptions). Prices are
always assumptions, and each says its basis (``price_basis``): a ``rental`` price per device-hour
(a provider's, margin included) or a ``tco`` one (purchase amortised plus power, no margin), whose
inputs re-derive it (:meth:`AcceleratorProfile.price_on` converts between the bases). The
default roofline efficiencies are assumptions too, used where no calibration table exists for
the device (then predictions say ``roofline-default``). A device without measured tables may
name the measured architecture it borrows per-op efficiency surfaces from
(``transferred_from``; predictions say ``transferred:<system>/<runtime>-<version>``): its
default efficiencies then cap the borrowed ones.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from hetsim.spec._types import (
    Bandwidth,
    Bytes,
    Count,
    Flops,
    Fraction,
    LatencySeconds,
    PricePerHour,
    StepSeconds,
    StrictModel,
    Watts,
    figure_model,
)
from hetsim.spec.precision import (
    ACTIVATION_FORMATS,
    COMPUTE_FORMATS,
    KV_FORMATS,
    WEIGHT_FORMATS,
    gemm_compute_format,
)

__all__ = [
    "no_measured_tables",
    "PRICE_BASES",
    "TRANSFER_SYSTEMS",
    "AcceleratorProfile",
    "PriceBasis",
    "Source",
    "TcoInputs",
    "TransferSource",
]

#: what a price per device-hour can be: what a provider charges (``rental``: its margin, the
#: host's share, power and hosting included) or what owning the device costs (``tco``)
PRICE_BASES = ("rental", "tco")
#: hours in a year, for amortising a purchase
HOURS_PER_YEAR = 8760.0
#: how far a tco price may sit from what its inputs give (the notes round to cents)
_TCO_TOLERANCE = 0.02

#: measured architectures whose efficiency surfaces hetsim ships (hetsim/perf/transferred/), with
#: the profile whose datasheet peaks they were derived against; the rule that picks one for a
#: device without tables is :func:`hetsim.perf.transferred.nearest_measured`
TRANSFER_SYSTEMS = {
    "a100_sxm": "nvidia-a100-80gb-sxm",
    "h100_sxm": "nvidia-h100-sxm",
    "h200_sxm": "nvidia-h200-sxm",
}

BytesFigure = figure_model(Bytes, "80 GiB")
BandwidthFigure = figure_model(Bandwidth, "3.35 TB/s")
FlopsFigure = figure_model(Flops, "989 TFLOPS")
SecondsFigure = figure_model(LatencySeconds, "2 us")
StepSecondsFigure = figure_model(StepSeconds, "2 ms")
WattsFigure = figure_model(Watts, "700 W")
PriceFigure = figure_model(PricePerHour, "$2.50/h")
CountFigure = figure_model(Count, "8")
FractionFigure = figure_model(Fraction, "0.8")


class Source(StrictModel):
    id: str = Field(description="short id that figures cite in their `source`")
    url: str
    supports: str = Field(description="which figures this source supports")


class Memory(StrictModel):
    capacity: BytesFigure = Field(description="device memory (HBM/GDDR/DRAM) capacity")
    bandwidth: BandwidthFigure = Field(description="peak memory bandwidth")
    type: str = Field(description="HBM3, HBM3e, GDDR6, DDR5 ...")


class Formats(StrictModel):
    """Formats this device can serve, per role (compute or storage)."""

    weights: list[str]
    activations: list[str]
    kv: list[str]

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: list[str]) -> list[str]:
        return _check_names(v, WEIGHT_FORMATS)

    @field_validator("activations")
    @classmethod
    def _activations(cls, v: list[str]) -> list[str]:
        return _check_names(v, ACTIVATION_FORMATS)

    @field_validator("kv")
    @classmethod
    def _kv(cls, v: list[str]) -> list[str]:
        return _check_names(v, KV_FORMATS)


def _check_names(values: list[str], allowed: tuple[str, ...]) -> list[str]:
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ValueError(f"unknown format(s) {bad}; allowed: {', '.join(allowed)}")
    return values


class ScaleUp(StrictModel):
    technology: str = Field(description="NVLink4, MetaXLink, HCCS, Infinity Fabric, PCIe ...")
    bandwidth: BandwidthFigure = Field(
        description="per device, per direction (what one rank can send while receiving as much)"
    )
    latency: SecondsFigure = Field(description="one-hop latency of a collective step")
    domain_size: Count = Field(
        ge=1, description="devices in one scale-up domain (node or supernode)"
    )


class Nic(StrictModel):
    count_per_device: float = Field(gt=0, description="NICs per device (0.5: one per two devices)")
    speed: BandwidthFigure = Field(description="line rate of one NIC, e.g. '400 Gbps'")
    rdma: bool = True
    gpudirect: bool = Field(description="NIC reads/writes device memory without host staging")


class Host(StrictModel):
    pcie_gen: Count = Field(ge=3, le=6)
    pcie_bandwidth: BandwidthFigure = Field(description="device↔host, per direction (x16)")


class TcoInputs(StrictModel):
    """What owning one device costs per hour: its purchase (with its share of the server and
    network) amortised over the hours it is used, plus the wall power it draws and hosting."""

    capex: float = Field(gt=0, description="US$ per device, its server and network share included")
    years: float = Field(gt=0, description="amortisation period")
    utilisation: Fraction = Field(description="share of the hours the device is rented or used")
    power: WattsFigure = Field(description="power per device the energy bill is computed on")
    power_factor: float = Field(
        ge=1, description="wall energy per device watt: the host's share and the PUE together"
    )
    usd_per_kwh: float = Field(gt=0, description="electricity price")
    hosting_per_hour: float = Field(default=0.0, ge=0, description="US$ per device-hour")

    @property
    def per_hour(self) -> float:
        """The device-hour price these inputs give."""
        hours = self.years * HOURS_PER_YEAR * self.utilisation
        energy = self.power.value / 1000 * self.power_factor * self.usd_per_kwh
        return self.capex / hours + energy + self.hosting_per_hour


class PriceBasis(StrictModel):
    """What ``price_per_hour`` is: a rental price or a cost of ownership, and what it includes."""

    basis: Literal["rental", "tco"]
    includes: str = Field(description="what the price covers (margin, host, power, hosting)")
    tco: TcoInputs | None = Field(
        default=None, description="the inputs of a tco price (required for `tco`)"
    )
    confidence: Literal["assumption"] = Field(
        default="assumption", description="a basis is always an assumption, as prices are"
    )
    source: str | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _inputs(self) -> PriceBasis:
        if self.basis == "tco" and self.tco is None:
            raise ValueError("price_basis.basis 'tco' needs price_basis.tco (its inputs)")
        return self


class Efficiency(StrictModel):
    """Roofline defaults, used when no calibration table exists, and the ceiling of efficiencies
    transferred from another architecture. These are assumptions."""

    compute: FractionFigure = Field(description="achieved / peak for large GEMMs")
    memory: FractionFigure = Field(description="achieved / peak for streaming reads")
    network: FractionFigure = Field(description="achieved / line rate for large transfers")
    step_overhead: StepSecondsFigure = Field(description="fixed runtime cost per batch step")


class TransferSource(StrictModel):
    """The measured architecture whose per-op efficiency surfaces a device without tables of its
    own borrows (``transferred:<system>/<runtime>-<version>``), and why it is the nearest."""

    system: str = Field(description=f"one of {', '.join(TRANSFER_SYSTEMS)}")
    note: str = Field(description="why this architecture (compute/bandwidth class, formats)")

    @field_validator("system")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in TRANSFER_SYSTEMS:
            raise ValueError(
                f"no efficiency surfaces for {v!r}; transferable: {', '.join(TRANSFER_SYSTEMS)}"
            )
        return v


class AcceleratorProfile(StrictModel):
    name: str = Field(description="id used by scenarios, e.g. 'nvidia-h100-sxm'")
    display_name: str
    vendor: str
    kind: Literal["gpu", "npu", "cpu"]
    memory: Memory
    compute: dict[str, FlopsFigure] = Field(
        description=f"dense peak throughput per compute format ({', '.join(COMPUTE_FORMATS)})"
    )
    formats: Formats
    scale_up: ScaleUp | None = None
    nic: Nic | None = None
    host: Host
    tdp: WattsFigure
    price_per_hour: PriceFigure = Field(
        description="indicative price per device-hour, on `price_basis`; always an assumption"
    )
    price_basis: PriceBasis | None = Field(
        default=None,
        description="rental or tco, and what the price includes (required for any price above 0)",
    )
    efficiency: Efficiency
    calibration: str | None = Field(
        default=None,
        description="path of a calibration table, relative to the profile file that declares it "
        "(absolute once loaded)",
    )
    measured_tables: str | None = Field(
        default=None,
        description="measured per-op kernel tables a pool with `runtime:` uses: an "
        "aiconfigurator system (e.g. h200_sxm; needs `pip install -e '.[nvidia]'`) or a .npz file "
        "written by `hetsim calibrate --from aiconfigurator`, relative to the profile file "
        "(absolute once loaded)",
    )
    transferred_from: TransferSource | None = Field(
        default=None,
        description="a device without measured tables: the measured architecture whose "
        "efficiency surfaces price its ops by default (`transferred`), instead of the bare "
        "roofline at `efficiency`",
    )
    efficiency_source: Literal["transferred", "roofline", "end-to-end"] | None = Field(
        default=None,
        description="`roofline` opts out of the transferred surfaces (the default efficiencies "
        "price every op); `transferred` (the default where `transferred_from` is set) requires it; "
        "`end-to-end`: `efficiency` was fitted to benchmark runs (`hetsim calibrate --bench`), "
        "which then prices every op instead of any transferred surfaces",
    )
    sources: list[Source] = Field(min_length=1)
    notes: str | None = None

    @field_validator("compute")
    @classmethod
    def _compute_keys(cls, v: dict[str, object]) -> dict[str, object]:
        bad = [k for k in v if k not in COMPUTE_FORMATS]
        if bad:
            raise ValueError(
                f"unknown compute format(s) {bad}; allowed: {', '.join(COMPUTE_FORMATS)}"
            )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> AcceleratorProfile:
        if self.price_per_hour.confidence != "assumption":
            raise ValueError("price_per_hour.confidence must be 'assumption': prices are not facts")
        for act in self.formats.activations:
            for w in self.formats.weights:
                key = gemm_compute_format(w, act)
                if key is not None and key not in self.compute:
                    raise ValueError(
                        f"formats allow weights={w} with activations={act}, which computes at "
                        f"{key}, but `compute` has no {key} peak"
                    )
        if self.price_basis is None and self.price > 0:
            raise ValueError("price_basis is required: is price_per_hour a rental or a tco price?")
        tco = self.price_basis.tco if self.price_basis else None
        if tco is not None and self.price_basis.basis == "tco":
            derived = tco.per_hour
            if abs(derived - self.price) > _TCO_TOLERANCE * self.price:
                raise ValueError(
                    f"price_per_hour {self.price:.3f} $/h is not what price_basis.tco gives "
                    f"({derived:.3f} $/h)"
                )
        if self.efficiency_source == "transferred" and self.transferred_from is None:
            raise ValueError("efficiency_source 'transferred' needs `transferred_from`")
        if self.transferred_from is not None and self.measured_tables is not None:
            raise ValueError(
                "a profile with measured_tables needs no transferred_from: pools without "
                "`runtime:` stay on the roofline or calibration"
            )
        ids = {s.id for s in self.sources}
        for path, fig in self._figures():
            if fig.source and not fig.source.startswith("http") and fig.source not in ids:
                raise ValueError(
                    f"{path}.source {fig.source!r} is not one of sources: {sorted(ids)}"
                )
        return self

    def _figures(self) -> list[tuple[str, object]]:
        out: list[tuple[str, object]] = [
            ("memory.capacity", self.memory.capacity),
            ("memory.bandwidth", self.memory.bandwidth),
            ("tdp", self.tdp),
            ("price_per_hour", self.price_per_hour),
        ]
        if self.price_basis is not None:
            out += [("price_basis", self.price_basis)]
        if self.price_basis is not None and self.price_basis.tco is not None:
            out += [("price_basis.tco.power", self.price_basis.tco.power)]
        out += [(f"compute.{k}", v) for k, v in self.compute.items()]
        if self.scale_up:
            out += [("scale_up.bandwidth", self.scale_up.bandwidth)]
        if self.nic:
            out += [("nic.speed", self.nic.speed)]
        return out

    # Convenience accessors in SI units -------------------------------------------------------

    @cached_property
    def memory_bytes(self) -> float:
        return self.memory.capacity.value

    @cached_property
    def memory_bandwidth(self) -> float:
        return self.memory.bandwidth.value

    def peak_flops(self, compute_key: str) -> float:
        """Dense peak for a compute format, in operations per second."""
        return self.compute[compute_key].value

    @property
    def transfers(self) -> bool:
        """Whether its ops are priced by borrowed efficiency surfaces unless calibrated."""
        return self.transferred_from is not None and self.efficiency_source in (None, "transferred")

    @property
    def price(self) -> float:
        """``price_per_hour`` as the profile states it, on its own basis (``price_basis``)."""
        return self.price_per_hour.value

    @property
    def basis(self) -> str | None:
        """``rental`` or ``tco``; None for an unpriced device (price 0, e.g. a calibrated host)."""
        return self.price_basis.basis if self.price_basis else None

    def price_on(self, basis: str, margin: float) -> float:
        """The device-hour price on ``basis``: as stated when the bases agree; a tco price with
        a provider ``margin`` on top as a rental equivalent; a rental price less that margin as
        a tco equivalent (the profile gives no ownership inputs for a rented device)."""
        if basis == self.basis or self.price == 0:
            return self.price
        if basis == "rental":
            return self.price * (1 + margin)
        return self.price / (1 + margin)

    def supports(self, role: str, fmt: str) -> bool:
        return fmt in getattr(self.formats, role)

    def uncertain_figures(self) -> list[str]:
        """Field paths whose confidence is not 'datasheet' (shown in `hetsim profiles`)."""
        return [p for p, f in self._figures() if f.confidence != "datasheet"]  # type: ignore[attr-defined]

    @classmethod
    def from_yaml(cls, path: Path) -> AcceleratorProfile:
        """The profile in ``path``, its ``calibration`` made absolute against that file's folder:
        a scenario-local copy of a bundled profile names a table next to itself."""
        from hetsim.spec.loader import load_yaml_model

        profile = load_yaml_model(cls, path)
        # a .npz of measured tables is a file next to the profile too (a system name is not)
        here = Path(path).resolve().parent
        update = {}
        if profile.calibration is not None and not Path(profile.calibration).is_absolute():
            update["calibration"] = str(here / profile.calibration)
        tables = profile.measured_tables
        if tables is not None and tables.endswith(".npz") and not Path(tables).is_absolute():
            update["measured_tables"] = str(here / tables)
        return profile.model_copy(update=update) if update else profile


# ---- the profile catalogue -------------------------------------------------------------------

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def profile_dirs(extra: list[Path] | None = None) -> list[Path]:
    """Where profiles are looked up, first match wins: ``extra`` folders (a scenario's own
    ``hardware_profiles/``), ``$HETSIM_PROFILE_PATH``, the repository's ``hardware_profiles/``
    (editable installs) and the copy bundled in the wheel."""
    import os

    dirs = list(extra or [])
    env = os.environ.get("HETSIM_PROFILE_PATH")
    if env:
        dirs += [Path(p) for p in env.split(os.pathsep) if p]
    dirs += [
        _PACKAGE_DIR.parent / "hardware_profiles",
        _PACKAGE_DIR / "_bundled" / "hardware_profiles",
    ]
    return [d for d in dirs if d.is_dir()]


def available_profiles(extra: list[Path] | None = None) -> dict[str, Path]:
    """Profile name → file, over all lookup folders."""
    found: dict[str, Path] = {}
    for d in profile_dirs(extra):
        for p in sorted(d.glob("*.yaml")):
            found.setdefault(p.stem, p)
    return found


_CACHE: dict[Path, AcceleratorProfile] = {}


def load_profile(
    name: str, extra: list[Path] | None = None, base: Path | None = None
) -> AcceleratorProfile:
    """A profile by name, or by path to a YAML file relative to ``base`` (the scenario's folder;
    None: the working directory) or to a folder of ``extra``; an unknown name lists the known
    ones, a path that names no file says so."""
    from hetsim.errors import InputError

    candidate = Path(name)
    if name.endswith((".yaml", ".yml")):
        # the scenario's folder, not wherever the command runs: a scenario means one profile
        for folder in [base if base is not None else Path.cwd(), *(extra or [])]:
            p = candidate if candidate.is_absolute() else folder / candidate
            if p.exists():
                return _load_cached(p)
        raise InputError(
            "profile file not found",
            value=name,
            allowed=f"a path relative to {(base or Path.cwd()).resolve()}, or a bundled "
            "accelerator name",
        )
    known = available_profiles(extra)
    if name not in known:
        raise InputError(
            "unknown accelerator", value=name, allowed=", ".join(sorted(known)) or "(none found)"
        )
    return _load_cached(known[name])


def _load_cached(path: Path) -> AcceleratorProfile:
    path = path.resolve()
    if path not in _CACHE:
        profile = AcceleratorProfile.from_yaml(path)
        if profile.name != path.stem:
            from hetsim.errors import InputError

            raise InputError(
                "a profile's name must match its file name",
                file=path,
                field="name",
                value=profile.name,
                allowed=path.stem,
            )
        _CACHE[path] = profile
    return _CACHE[path]


def no_measured_tables(profile: AcceleratorProfile, runtime: str, field: str) -> Exception:
    """A pool names a serving ``runtime`` (which selects measured kernel tables) on a profile
    that has none: what the bundled profiles with tables are is what is allowed."""
    from hetsim.errors import InputError

    measured = [n for n in available_profiles() if load_profile(n).measured_tables is not None]
    return InputError(
        f"runtime {runtime!r} selects measured kernel tables, but profile {profile.name!r} "
        "names none (measured_tables)",
        field=field,
        value=runtime,
        allowed="drop `runtime:`, or an accelerator with measured tables: " + ", ".join(measured),
    )
