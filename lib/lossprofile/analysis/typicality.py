"""Typicality: how unlike clean music a clip looks to the model, in any direction.

Every signed score (mean NLL, the probe peak, a fitted combination) is right for some damage and wrong for
another: noise and deleted notes lower the model's loss, shuffles and wrong notes raise it. The remedy of the
likelihood-paradox literature (Nalisnick et al. 2019's typicality test; Morningstar et al. 2021's density of
states) is direction-free: compute many statistics of the model on each input
(`lossprofile.analysis.statistics`), fit their distribution on clean, in-distribution music *only*, and
score how atypical an input is. A clip that is too easy is then as suspect as one that is too hard, and no
damaged example is ever seen in fitting, so every kind of damage is held out by construction.

- The **reference** (`reference_pieces`, `score_reference`): the statistics of clean excerpts the model
  never trained on, disjoint from the validation's pieces (ASAP performances: the 40 the OOD set renders and the
  held-out ones the validation does not use; two excerpts each), shipped with the package and its provenance.
- The **detectors** (`DETECTORS`, each higher = more typical): a shrinkage-covariance Mahalanobis distance
  (scikit-learn's ``LedoitWolf``), Fisher's and the minimum two-sided tail probability per statistic, an
  isolation forest and the mean distance to the nearest reference clips (scikit-learn). All standardise each
  statistic by the reference's median and interquartile range first.
- `explain`: a clip's percentile among the reference's clips and the statistics that made it most atypical.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .. import audio, columns
from . import statistics as registry
from ..data.datasets import ASAP_DIR, Piece
from ..modality import modality_of

DETECTORS = ("mahalanobis", "fisher", "min_p", "isolation_forest", "knn")
REFERENCE_OFFSETS_SECONDS = (0.0, 20.0)  # two excerpts per performance: from its first sound and 20 s later
REFERENCE_DIR = Path(__file__).parent / "reference"  # shipped: <modality>.parquet + <modality>.json
columns.register("typicality", "see meaning", "how typical of clean music the clip's statistics are, higher = more "
                 "typical (the shipped detector's score against the shipped clean reference; its units are the "
                 "detector's: minus a Mahalanobis distance, a log probability, ...)")
columns.register("typicality_percentile", "percent", "share of the clean reference's clips scoring at most as "
                 "typical (0 = less typical than every clean clip)")
columns.register(r"atypical_\d", "", "a statistic that made the clip atypical: its value, the clean reference's "
                 "5-95% range and the side it lies on (1 = furthest)")
columns.register(r"typicality_\w+", "see meaning", "a typicality detector's score (higher = more typical of the "
                 "clean reference)")


def reference_pieces(validation_count: int = 48) -> list[Piece]:
    """The reference's performances: every ASAP file of ``data/asap`` (the OOD set's) and every held-out one the
    validation does not use ([`analysis.validation.pieces.validation_pieces`][lossprofile.analysis.validation.pieces.validation_pieces] after its first
    ``validation_count``), so that no reference piece is a validation piece."""
    from .validation.pieces import validation_pieces

    ours = sorted(p for p in ASAP_DIR.rglob("*") if p.suffix.lower() in audio.MIDI_SUFFIXES)
    own = [Piece("asap", str(p.relative_to(ASAP_DIR).with_suffix("")).replace(os.sep, "-"), p) for p in ours]
    return own + validation_pieces(None)[validation_count:]


def score_reference(lm, pieces: Sequence[Piece], out_dir: str | os.PathLike, seconds: float = 15.0, seed: int = 0,
                    progress: bool = True) -> pd.DataFrame:
    """The profile rows (every statistic) of each reference piece's excerpts at `REFERENCE_OFFSETS_SECONDS`
    (as the model's modality takes them, [`modality.Modality.reference_excerpts`][lossprofile.modality.Modality.reference_excerpts]: rendered with
    piano at −20 dBFS, as the validation renders its pieces, or the score from its first note), resumable per piece
    under ``out_dir``: one row per excerpt, with ``piece``, ``path`` and ``offset_seconds``."""
    from ..io import file_digest
    from ..runner import for_each_piece, keyed_part
    from .profile import options_key, profile_scores

    modality = modality_of(lm)
    params = dict(model=lm.name, weights=lm.fingerprint, seconds=seconds, seed=seed,
                  offsets=list(REFERENCE_OFFSETS_SECONDS), **options_key())

    def rows(piece: Piece) -> pd.DataFrame:
        excerpts = modality.reference_excerpts(piece, lm.sample_rate, seconds, REFERENCE_OFFSETS_SECONDS)
        table = profile_scores(lm, [w for _, w in excerpts], lm.sample_rate, excerpt_seconds=seconds, seed=seed, weights={},
                               names=[f"{piece.name}@{o:g}" for o, _ in excerpts], report=False)
        if table.attrs["errors"]:
            raise audio.AudioError(table.attrs["errors"][0]["error"])
        table = table.drop(columns=["profile_score"])
        table.insert(1, "offset_seconds", [o for o, _ in excerpts])
        table.insert(1, "path", str(piece.path))
        table["piece"] = piece.name
        return table

    parts, _ = for_each_piece(pieces, lambda p: keyed_part(out_dir, p, {**params, "file": file_digest(p.path)}),
                              rows, f"{lm.name} reference", progress)
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True) if parts else pd.DataFrame()


@dataclass
class Typicality:
    """A detector fitted on the reference's clean clips only. `score` → higher = more typical.

    ``statistics``: the columns it reads; ``center``/``scale``: the reference's median and interquartile range
    per statistic (what every detector standardises by); ``reference_scores``: the reference clips' own scores
    (in-sample), for percentiles; ``bands``: the reference's band of window means per window curve, which band
    shares (`lossprofile.analysis.statistics.with_band_statistics`) of the rows scored are computed against."""

    detector: str
    statistics: list[str]
    center: np.ndarray
    scale: np.ndarray
    reference_z: np.ndarray  # [N, S] the reference's standardised statistics
    seed: int = 0
    model: object = field(default=None, repr=False)
    reference_scores: np.ndarray = field(default=None, repr=False)
    bands: dict = field(default_factory=dict, repr=False)

    def with_bands(self, rows: pd.DataFrame) -> pd.DataFrame:
        """``rows`` with their band shares against this reference's bands (where they have window quantiles)."""
        return registry.with_band_statistics(rows, self.bands)

    def standardise(self, rows: pd.DataFrame) -> np.ndarray:
        rows = self.with_bands(rows)
        missing = [s for s in self.statistics if s not in rows]
        if missing:
            raise KeyError(f"rows lack the statistics {missing} the typicality score reads")
        return (rows[self.statistics].to_numpy(np.float64) - self.center) / self.scale

    def score(self, rows: pd.DataFrame) -> np.ndarray:
        """Typicality of each row, higher = more like the reference's clean music; NaN where a statistic is."""
        z = self.standardise(rows)
        ok = np.isfinite(z).all(1)
        out = np.full(len(z), np.nan)
        if ok.any():
            out[ok] = self._score(z[ok])
        return out

    def _score(self, z: np.ndarray) -> np.ndarray:
        if self.detector == "mahalanobis":
            return -np.sqrt(np.maximum(self.model.mahalanobis(z), 0.0))
        if self.detector in ("fisher", "min_p"):
            logp = log_two_sided_tail(self.reference_z, z)
            return logp.sum(1) if self.detector == "fisher" else logp.min(1)
        if self.detector == "isolation_forest":
            return self.model.score_samples(z)
        if self.detector == "knn":
            distances, _ = self.model.kneighbors(z)
            return -distances.mean(1)
        raise ValueError(f"unknown detector {self.detector!r}; expected one of {DETECTORS}")

    def percentile(self, scores: np.ndarray) -> np.ndarray:
        """Share (0–100) of the reference's clean clips that score at most as typical as each score."""
        ref = np.sort(self.reference_scores)
        return 100.0 * np.searchsorted(ref, np.asarray(scores, float), side="right") / len(ref)


def two_sided_tail(reference_z: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Per statistic, the two-sided tail probability of each standardised value among the reference's ``[N, S]`` →
    ``[M, S]``: 2 · min(F, 1 − F), F the smoothed empirical CDF (mid-rank of x + 0.5) / (N + 1), capped at 1; beyond
    the reference's extremes the tail goes on as a normal one from the edge (an empirical tail alone stops at
    about 1/N, and a clip 5 interquartile ranges out would tie with one just past the last clean clip)."""
    return np.exp(log_two_sided_tail(reference_z, z))


def log_two_sided_tail(reference_z: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The log of `two_sided_tail`."""
    from scipy.stats import norm

    n = len(reference_z)
    out = np.empty(z.shape)
    for j in range(z.shape[1]):
        ref = np.sort(reference_z[:, j])
        x = z[:, j]
        below, at_most = np.searchsorted(ref, x, side="left"), np.searchsorted(ref, x, side="right")
        cdf = ((below + at_most) / 2 + 0.5) / (n + 1)  # mid-ranks: the same tail at either end
        logp = np.log(np.minimum(1.0, 2 * np.minimum(cdf, 1 - cdf)))
        edge = np.log(2 / (n + 1))  # the empirical tail at the last clean clip, either end
        for side, beyond, at in ((1, x > ref[-1], ref[-1]), (-1, x < ref[0], ref[0])):
            if beyond.any():  # log sf(|x|) - log sf(|edge|): the normal tail's decay past the last clean clip
                decay = norm.logsf(side * x[beyond]) - norm.logsf(side * at)
                logp[beyond] = edge + np.minimum(decay, 0.0)
        out[:, j] = logp
    return out


def usable_statistics(reference: pd.DataFrame, statistics: Sequence[str]) -> list[str]:
    """The statistics the reference has, finite on every clip and not constant."""
    out = []
    for s in statistics:
        if s in reference:
            values = reference[s].to_numpy(np.float64)
            if np.isfinite(values).all() and np.ptp(values) > 0:
                out.append(s)
    return out


def fit(reference: pd.DataFrame, statistics: Sequence[str], detector: str = "mahalanobis", seed: int = 0,
        neighbours: int = 5, folds: int = 10, bands: dict | None = None) -> Typicality:
    """Fit ``detector`` on the reference rows' ``statistics`` (those usable: `usable_statistics`).

    Band shares are computed against ``bands`` (default: the reference's own,
    `lossprofile.analysis.statistics.reference_bands`, from its clips' window quantiles; a shipped reference
    carries its bands in its provenance), the reference's own rows included.

    The reference clips' own scores, which percentiles are read against, are out of fold (``folds`` folds of whole
    pieces, by the ``piece`` column where there is one): a clip the detector was fitted on looks more typical than
    a new clean clip does, and in-sample percentiles would put most new clean music in the bottom quarter."""
    bands = registry.reference_bands(reference) if bands is None else bands
    reference = registry.with_band_statistics(reference, bands)
    stats = usable_statistics(reference, statistics)
    if not stats:
        raise ValueError(f"the reference has none of the statistics {list(statistics)[:5]}...")
    values = reference[stats].to_numpy(np.float64)
    center = np.median(values, 0)
    q75, q25 = np.percentile(values, [75, 25], axis=0)
    scale = np.where(q75 - q25 > 0, (q75 - q25) / 1.349, values.std(0))  # the IQR of a normal is 1.349 SD
    scale = np.where(scale > 0, scale, 1.0)
    z = (values - center) / scale
    model = None
    if detector == "mahalanobis":
        from sklearn.covariance import LedoitWolf

        model = LedoitWolf().fit(z)
    elif detector == "isolation_forest":
        from sklearn.ensemble import IsolationForest

        model = IsolationForest(n_estimators=300, random_state=seed).fit(z)
    elif detector == "knn":
        from sklearn.neighbors import NearestNeighbors

        model = NearestNeighbors(n_neighbors=min(neighbours, len(z))).fit(z)
    elif detector not in ("fisher", "min_p"):
        raise ValueError(f"unknown detector {detector!r}; expected one of {DETECTORS}")
    typ = Typicality(detector, stats, center, scale, z, seed, model, bands=bands)
    typ.reference_scores = typ._score(z) if folds < 2 else out_of_fold_scores(reference, stats, detector, seed,
                                                                               neighbours, folds)
    return typ


def out_of_fold_scores(reference: pd.DataFrame, statistics: Sequence[str], detector: str, seed: int,
                       neighbours: int, folds: int) -> np.ndarray:
    """Each reference clip's score by a detector fitted without its piece (``folds`` folds of pieces)."""
    groups = reference["piece"].to_numpy() if "piece" in reference else np.arange(len(reference))
    names = np.unique(groups)
    fold_of = dict(zip(names, np.random.default_rng(seed).permutation(len(names)) % min(folds, len(names))))
    fold = np.array([fold_of[g] for g in groups])
    out = np.empty(len(reference))
    for k in np.unique(fold):
        inside = fold == k
        typ = fit(reference[~inside], statistics, detector, seed, neighbours, folds=1)
        out[inside] = typ.score(reference[inside])
    return out


def explain(typ: Typicality, rows: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """Why each row scored as it did: its typicality, its percentile among the reference's clean clips, and the
    ``top`` statistics furthest from the reference (largest |standardised value|), each with its value and the
    reference's 5–95% range. One row per input row."""
    rows = typ.with_bands(rows)
    z = typ.standardise(rows)
    scores = typ.score(rows)
    low, high = (np.percentile(typ.reference_z * typ.scale + typ.center, q, axis=0) for q in (5, 95))
    out = []
    for i in range(len(rows)):
        row = dict(typicality=scores[i], typicality_percentile=float(typ.percentile(scores[i:i + 1])[0]))
        order = np.argsort(-np.nan_to_num(np.abs(z[i]), nan=-1.0))[:top]
        for rank, j in enumerate(order, 1):
            value = rows[typ.statistics[j]].iloc[i]
            row[f"atypical_{rank}"] = (f"{typ.statistics[j]} = {value:.3g} (clean music: {low[j]:.3g} to "
                                       f"{high[j]:.3g}, {'above' if z[i, j] > 0 else 'below'})")
        out.append(row)
    return pd.DataFrame(out, index=rows.index)


def save_reference(reference: pd.DataFrame, modality: str, provenance: dict,
                   folder: str | os.PathLike = REFERENCE_DIR) -> Path:
    """Ship a reference: ``folder/<modality>.parquet`` (its statistics) and ``<modality>.json`` (provenance:
    pieces, model fingerprint, seed, statistic list, the chosen detector)."""
    from ..io import write_parquet_atomic, write_text_atomic

    folder = Path(folder)
    write_parquet_atomic(reference, folder / f"{modality}.parquet")
    write_text_atomic(json.dumps(provenance, indent=1, default=str), folder / f"{modality}.json")
    return folder / f"{modality}.parquet"


def load_reference(modality: str, folder: str | os.PathLike = REFERENCE_DIR) -> tuple[pd.DataFrame, dict] | None:
    """(reference rows, provenance) shipped for ``modality``, or None."""
    folder = Path(folder)
    if not (folder / f"{modality}.parquet").exists():
        return None
    return pd.read_parquet(folder / f"{modality}.parquet"), json.loads((folder / f"{modality}.json").read_text())


def reference_digest(modality: str, folder: str | os.PathLike = REFERENCE_DIR) -> str | None:
    """A short content hash of the modality's shipped reference (None without one): part of a cached profile's
    key, so a new reference scores the clips again."""
    from ..io import file_digest

    folder = Path(folder)
    files = [folder / f"{modality}.parquet", folder / f"{modality}.json"]
    return "-".join(file_digest(f) for f in files) if files[0].exists() else None


_IN_USE: dict[str, tuple[pd.DataFrame, dict]] = {}  # modality -> (reference, provenance) standing in for the shipped
_FITTED: dict[tuple, Typicality] = {}


@contextlib.contextmanager
def reference_in_use(modality: str, reference: pd.DataFrame, detector: str, statistics: Sequence[str],
                     seed: int = 0):
    """Within the block, `shipped` gives this reference's detector for ``modality``: what the validation
    scores with before it ships anything (a recommended typicality score is computed from the reference the
    validation scored, not from whatever the package shipped last)."""
    _IN_USE[modality] = (reference, dict(detector=detector, statistics=list(statistics), seed=seed))
    try:
        yield
    finally:
        _IN_USE.pop(modality, None)


def shipped(modality: str, folder: str | os.PathLike = REFERENCE_DIR) -> Typicality | None:
    """The shipped typicality score of a modality (its reference, statistics and detector), or None; fitted once
    per process."""
    found = _IN_USE.get(modality) or load_reference(modality, folder)
    if found is None:
        return None
    reference, provenance = found
    key = (modality, id(reference), provenance["detector"], tuple(provenance["statistics"]), str(folder))
    if key not in _FITTED:
        _FITTED[key] = fit(reference, provenance["statistics"], provenance["detector"], provenance.get("seed", 0),
                           bands=provenance.get("window_bands"))
    return _FITTED[key]
