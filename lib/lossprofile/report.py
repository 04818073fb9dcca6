"""A self-contained ``report.html`` beside a finished run's tables: what a person looks at first.

``lossprofile score`` and ``lossprofile profile`` write one at the end; ``lossprofile report OUT`` (re)writes
it for any finished run. It holds the run's parameters; a sortable per-piece table (units and directions from
[`lossprofile.columns`][]); for the first pieces their clean and perturbed loss curves (the paper's regions
shaded) as inline PNG and the clean and perturbed excerpts as players (FLAC files in ``report_media/`` beside
it, so the page stays small); the pieces that were skipped, with their reasons; and the data dictionary. It
opens from disk: no server, no network, no external script or style.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import io
import json
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .columns import CODEC_UNITS
from .errors import BadInputError, MissingInputError

RUN_FILE = "run.json"
MEDIA_DIR = "report_media"
CURVES_FILE = "profile_curves.parquet"  # a profile run's clean curves with their probes, one row per clip and frame

SORT_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0];
    var rows = Array.from(body.rows), asc = th.dataset.order !== 'asc';
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.value, y = b.cells[col].dataset.value;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    table.querySelectorAll('th').forEach(function (h) { delete h.dataset.order; });
    th.dataset.order = asc ? 'asc' : 'desc';
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""
STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 75em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
td.text, th.text { text-align: left; }
table.sortable th { cursor: pointer; background: #f2f2f2; }
th .unit { font-weight: normal; color: #666; font-size: 0.85em; }
section.piece { border-top: 1px solid #ddd; margin-top: 1.5em; }
audio { width: 28em; display: block; margin: 0.2em 0 0.6em; }
.muted { color: #666; }
"""


# run.json keys that may change between a run and its resumption: the files found (a file added to the folder)
RESUMABLE_KEYS = ("paths",)


def write_run_info(out_dir: str | os.PathLike, *, overwrite: bool = False, **info) -> None:
    """What the report needs to know of a run: command, model, data folder, sample and frame rate, seed, excerpt.

    A folder that already holds a run with other settings (another command, model, data folder, seed, excerpt,
    perturbation list...) is refused with a `BadInputError` naming what differs, unless ``overwrite``: this run
    would replace that run's results table (its per-piece parts are keyed by their settings and stay). The same
    settings again are a resumption, and so is a data folder that moved (its old path gone: the parts are keyed
    by the files' content, and the path column follows the files)."""
    path = Path(out_dir) / RUN_FILE
    new = json.loads(json.dumps(info, default=str))
    if path.exists() and not overwrite:
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = None  # unreadable: nothing it says can be kept; the results table is this run's
        if isinstance(old, dict):
            moved = isinstance(old.get("data"), str) and not Path(old["data"]).exists()  # the same files, elsewhere
            # a key only one side has is a setting recorded since (or no longer): not a difference
            changed = [key for key in old if key in new and key not in RESUMABLE_KEYS
                       and old[key] != new[key] and not (key == "data" and moved)]
            if changed:
                shown = "; ".join(_difference(key, old.get(key), new.get(key)) for key in changed[:4])
                more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
                raise BadInputError(f"{out_dir}: holds a {old.get('command', 'previous')} run with other settings "
                                    f"({shown}{more}); this run would replace its results. Give another --out, "
                                    "or --overwrite to replace them")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(new, indent=1) + "\n")


def _difference(key: str, old, new) -> str:
    """``key old -> new``; for lists (the perturbations) the first entry that differs, and in it the fields."""
    if isinstance(old, list) and isinstance(new, list):
        for i, (a, b) in enumerate(zip(old, new)):
            if a != b:
                if isinstance(a, dict) and isinstance(b, dict):
                    fields = [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]
                    return f"{key}[{i}] " + ", ".join(f"{k} {_short(a.get(k))} -> {_short(b.get(k))}"
                                                      for k in fields[:3])
                return f"{key}[{i}] {_short(a)} -> {_short(b)}"
        return f"{key} {len(old)} -> {len(new)} entries"
    return f"{key} {_short(old)} -> {_short(new)}"


def _short(value, width: int = 40) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 3] + "..."


def _cell(value, text: bool = False) -> str:
    if isinstance(value, (float, np.floating)) and not text:
        shown = "" if not np.isfinite(value) else f"{value:.3f}"
        return f'<td data-value="{value if np.isfinite(value) else ""}">{shown}</td>'
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        value = ""  # an empty cell of a text column (a parameter this perturbation does not have)
    text_value = html.escape(str(value))
    return f'<td{" class=text" if text else ""} data-value="{text_value}">{text_value}</td>'


def is_text(column: pd.Series) -> bool:
    """Names, paths, kinds: left-aligned (numbers stay right-aligned, so their digits line up)."""
    return not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column))


def html_table(table: pd.DataFrame, table_id: str, sortable: bool = True, *, units: dict | None = None) -> str:
    """A table with each header's unit (from [`lossprofile.columns`][], in ``units``: the run's model's) under its
    name; click a header to sort."""
    from .columns import describe

    heads, text = [], [is_text(table[c]) for c in table.columns]
    for col, left in zip(table.columns, text):
        unit, meaning = describe(col, units)
        heads.append(f'<th{" class=text" if left else ""} title="{html.escape(meaning)}">{html.escape(col)}'
                     + (f'<br><span class="unit">{html.escape(unit)}</span>' if unit else "") + "</th>")
    rows = ["<tr>" + "".join(_cell(v, t) for v, t in zip(row, text)) + "</tr>" for row in table.itertuples(index=False)]
    return (f'<table id="{table_id}" class="{"sortable" if sortable else ""}"><thead><tr>{"".join(heads)}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


@contextlib.contextmanager
def missing_glyphs_quiet():
    """A piece named in a script the installed fonts lack (CJK, say) draws boxes in a figure's title and warns once
    per glyph at every layout and save; the page names the piece in full beside the figure, so the warnings go."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font", category=UserWarning)
        yield


def png_data_uri(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    with missing_glyphs_quiet():
        fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def curve_figure(part: pd.DataFrame, title: str, unit: str = CODEC_UNITS["frame"]):
    """Clean and perturbed NLL per frame (top), delta with the detected regions shaded (bottom), for one perturbation;
    ``unit``: what one frame's loss is (the model's ``frame_loss_unit``)."""
    import matplotlib.pyplot as plt

    from .analysis.regions import REGIONS, detect_regions

    fig, axes = plt.subplots(2, 1, figsize=(8, 4), sharex=True)
    axes[0].plot(part["frame"], part["nll_clean"], lw=0.7, color="k", label="clean")
    axes[0].plot(part["frame"], part["nll_perturbed"], lw=0.7, color="tab:purple", label="perturbed")
    axes[0].set_ylabel(f"NLL ({unit})", fontsize=8)
    axes[0].legend(fontsize=7, loc="upper left")
    axes[1].plot(part["frame"], part["delta"], lw=0.7, color="tab:red")
    axes[1].axhline(0, color="0.5", lw=0.6, ls="--")
    axes[1].set_ylabel(f"delta ({unit})", fontsize=8)
    axes[1].set_xlabel("frame (20 ms)", fontsize=8)
    onset, length = part["onset_frame"].iloc[0], part["length_frames"].iloc[0]
    try:
        if pd.isna(onset) or pd.isna(length):  # a whole-excerpt perturbation (a score preset's): no window to shade
            raise ValueError("no window")
        onset, length = int(onset), int(length)
        regions = detect_regions(part["delta"].to_numpy(), onset, length)
        colours = dict(zip(REGIONS, ("tab:orange", "tab:blue", "tab:green")))
        for name in REGIONS:
            lo, hi = getattr(regions, name)
            if hi > lo:
                axes[1].axvspan(lo, hi, color=colours[name], alpha=0.2, label=name)
        axes[1].legend(fontsize=7, loc="upper right", ncol=3)
    except (ValueError, AttributeError):  # a window the detector cannot place: the curves alone
        if not (pd.isna(onset) or pd.isna(length)):
            axes[1].axvspan(int(onset), int(onset) + int(length), color="0.85")
    fig.suptitle(title, fontsize=9)
    with missing_glyphs_quiet():
        fig.tight_layout()
    return fig


def drop_stale_media(out: Path, kept: set[str]) -> None:
    """Remove the media files an earlier report left that this page no longer links."""
    for old in (out / MEDIA_DIR).glob("*.flac") if (out / MEDIA_DIR).is_dir() else []:
        if old.name not in kept:
            old.unlink()


def media_name(name: str) -> str:
    """The file name of a piece's player: its name made safe, and a digest of the exact name, since two names can
    be made safe alike (``sub/x`` and ``sub_x``, ``é`` and ``è``)."""
    from .io import slug

    return f"{slug(name)}-{hashlib.sha1(name.encode()).hexdigest()[:8]}.flac"


def _media(out: Path, name: str, wav: np.ndarray, sample_rate: int) -> str:
    from .audio import save_audio

    path = out / MEDIA_DIR / media_name(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_audio(path, wav, sample_rate)
    return f"{MEDIA_DIR}/{path.name}"


def _perturbation_of(row: pd.Series):
    """The perturbation object that made a row of the results table (audio or score kind)."""
    from .perturb.score import SCORE_KINDS, ScorePerturbation
    from .perturb.waveform import Perturbation

    kind = row["perturbation"]
    cls = ScorePerturbation if kind in SCORE_KINDS else Perturbation
    fields = {k: v for k, v in cls().as_row().items() if k != "perturbation"}
    values = {k: row[k] for k in fields if k in row and not (isinstance(row[k], float) and np.isnan(row[k]))}
    if cls is ScorePerturbation and isinstance(values.get("semitones"), str):
        values["semitones"] = tuple(int(s) for s in values["semitones"].split(","))
    for k in ("onset_frame", "length_frames", "segment_frames", "seed"):
        if k in values and values[k] is not None:
            values[k] = int(values[k])
    return cls(kind=kind, **values)


def _piece_sections(out: Path, results: pd.DataFrame, run: dict, max_pieces: int) -> list[str]:
    """For the first ``max_pieces`` pieces: the longest perturbation's curves, and both excerpts as players. Media of
    pieces no longer shown (an earlier report with a larger ``max_pieces``, or other pieces) are removed."""
    from .data.datasets import Piece
    from .modality import AUDIO
    from .runner import PERTURBATION_COLUMNS

    sections, media = [], set()
    paths = run.get("paths", {})
    unit = run.get("units", CODEC_UNITS)["frame"]
    for name, rows in list(results.groupby("piece", sort=False))[:max_pieces]:
        keys = rows.drop_duplicates("length_frames").sort_values("length_frames")
        shown = keys.iloc[-1]  # the longest window (NaN, a whole-excerpt perturbation, sorts last)
        same = [c for c in PERTURBATION_COLUMNS if c in rows]
        part = rows[(rows[same].eq(shown[same]) | (rows[same].isna() & shown[same].isna())).all(axis=1)]
        windowed = pd.notna(shown["length_frames"]) and pd.notna(shown["onset_frame"])
        where = (f"at frame {int(shown['onset_frame'])} for {int(shown['length_frames'])} frames" if windowed
                 else "over the whole excerpt")
        title = f"{name}: {shown['perturbation']} {where} (mean delta {part['delta'].mean():+.3f} {unit})"
        body = [f'<section class="piece" id="piece-{html.escape(name)}"><h3>{html.escape(name)}</h3>',
                f'<p class="muted">curve of its longest perturbation ({html.escape(str(shown["perturbation"]))}, '
                f'{int(shown["length_frames"]) if windowed else "whole excerpt"}'
                f'{" frames" if windowed else ""}); every perturbation\'s numbers are in the table above</p>',
                f'<img alt="loss curves of {html.escape(name)}" src="{png_data_uri(curve_figure(part, title, unit))}">']
        if name in paths and Path(paths[name]).exists():
            try:
                piece = Piece(str(rows["dataset"].iloc[0]), name, Path(paths[name]))
                seconds = float(rows["seconds_scored"].iloc[0]) if "seconds_scored" in rows else run["excerpt_seconds"]
                # players play sound: the piece's audio (a MIDI file rendered) whatever the model read
                clean, (perturbed,) = AUDIO.variants(piece, [_perturbation_of(shown)], run["sample_rate"],
                                                     run["frame_rate"], seconds, run["seed"])
                for label, wav in (("clean", clean), (f"perturbed ({shown['perturbation']})", perturbed)):
                    src = _media(out, f"{name}-{label.split()[0]}", wav, run["sample_rate"])
                    media.add(Path(src).name)
                    body.append(f'<div>{html.escape(label)} excerpt<audio controls preload="none" src="{src}"></audio></div>')
            except Exception as err:  # the report still comes out; say why there is no audio
                body.append(f'<p class="muted">no audio: {html.escape(str(err))}</p>')
        else:
            body.append('<p class="muted">no audio: the piece\'s file is not known to this report</p>')
        sections.append("".join(body) + "</section>")
    drop_stale_media(out, media)
    return sections


def probe_figure(curve: pd.DataFrame, title: str, unit: str = CODEC_UNITS["frame"]):
    """A profiled clip's clean NLL per frame and, from each burst's onset on, the NLL with that burst (bursts shaded
    orange, the long probe's window blue)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 2.6))
    ax.plot(curve["frame"], curve["nll_probed"], lw=1.2, color="tab:purple", alpha=0.8, label="with the latest burst")
    ax.plot(curve["frame"], curve["nll_clean"], lw=0.6, color="k", label="clean")
    for _, window in curve[curve["probe"] >= 0].groupby("probe"):
        ax.axvspan(window["frame"].min(), window["frame"].max() + 1, color="tab:orange", alpha=0.35)
    if curve["long_probe"].any():
        long = curve.loc[curve["long_probe"], "frame"]
        ax.axvspan(long.min(), long.max() + 1, color="tab:blue", alpha=0.12, label="long probe")
    ax.set_ylabel(f"NLL ({unit})", fontsize=8)
    ax.set_xlabel("frame (20 ms); orange: noise bursts", fontsize=8)
    ax.legend(fontsize=7, loc="upper right", ncol=3)
    fig.suptitle(title, fontsize=9)
    with missing_glyphs_quiet():
        fig.tight_layout()
    return fig


def _clip_sections(out: Path, table: pd.DataFrame, curves: pd.DataFrame, run: dict, max_pieces: int) -> list[str]:
    """For the first ``max_pieces`` clips of a profile run: the score, the typicality reading (percentile among the
    clean reference, the statistics that made it atypical) where the score is a typicality one, the clean curve
    with its probes, and the clean excerpt as a player."""
    from .analysis.profile import LOUDNESS_DBFS
    from .audio import load_audio, normalize_rms
    from .modality import usable_excerpt

    sections, media = [], set()
    unit = run.get("units", CODEC_UNITS)["frame"]
    paths = run.get("paths", {})
    for row in table.head(max_pieces).itertuples(index=False):
        name = str(row.piece)
        curve = curves[curves["piece"] == name]
        why = [f"profile_score {row.profile_score:.3g}" if np.isfinite(row.profile_score) else "no profile_score"]
        if hasattr(row, "typicality_percentile") and np.isfinite(row.typicality_percentile):
            why.append(f"typicality percentile {row.typicality_percentile:.0f} among the clean reference's clips (0: "
                       "less typical of clean music than every one of them, 50: like the middle one)")
        reasons = [getattr(row, f"atypical_{k}") for k in (1, 2, 3) if isinstance(getattr(row, f"atypical_{k}", None),
                                                                                   str)]
        body = [f'<section class="piece" id="clip-{html.escape(name)}"><h3>{html.escape(name)}</h3>',
                f"<p>{html.escape('; '.join(why))}</p>"]
        if reasons:
            body.append("<p>furthest from clean music:</p><ul>" + "".join(f"<li>{html.escape(r)}</li>" for r in reasons)
                        + "</ul>")
        if len(curve):
            body.append(f'<img alt="loss curve of {html.escape(name)}" '
                        f'src="{png_data_uri(probe_figure(curve, name, unit))}">')
        path = paths.get(name)
        if path and Path(path).exists():
            try:  # a MIDI file is rendered with General MIDI sounds, as an audio model heard it
                sr = run["sample_rate"]
                wav = normalize_rms(load_audio(path, sr), LOUDNESS_DBFS)
                hop = int(round(sr / run["frame_rate"]))
                seconds = float(getattr(row, "seconds_scored", run["excerpt_seconds"]))
                clip = usable_excerpt(wav, sr, seconds, 0.0, hop, source=str(path))
                src = _media(out, f"{name}-clip", normalize_rms(clip, LOUDNESS_DBFS), sr)
                media.add(Path(src).name)
                what = "rendered from MIDI" if Path(path).suffix.lower() in (".mid", ".midi") else "as profiled"
                body.append(f'<div>the excerpt {what}<audio controls preload="none" src="{src}"></audio></div>')
            except Exception as err:  # the report still comes out; say why there is no audio
                body.append(f'<p class="muted">no audio: {html.escape(str(err))}</p>')
        else:
            body.append('<p class="muted">no audio: the clip\'s file is not known to this report</p>')
        sections.append("".join(body) + "</section>")
    drop_stale_media(out, media)
    return sections


def region_means(results: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Mean delta in each region the detector finds ([`analysis.regions.detect_regions`][lossprofile.analysis.regions.detect_regions]), one row
    per curve (``keys``); NaN where a region is empty or the window cannot hold one."""
    from .analysis.regions import detect_regions, region_stats

    rows = []
    for key, curve in results.groupby(list(keys), dropna=False, sort=False):
        curve = curve.sort_values("frame")
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        onset, length = curve["onset_frame"].iloc[0], curve["length_frames"].iloc[0]
        if pd.isna(onset) or pd.isna(length):  # a perturbation with no window (a score preset's whole-piece kinds)
            rows.append(row)
            continue
        try:
            found = detect_regions(curve["delta"].to_numpy(), int(onset), int(length))
            row.update({f"{r['region']}_delta": r["mean"] for r in region_stats(curve["delta"].to_numpy(), found)})
        except ValueError:
            pass
        rows.append(row)
    return pd.DataFrame(rows)


LEVEL_NOTE = {
    "score": "Level: score scores each file at the level it has (the replication needs the authors' levels), so a "
             "quieter copy of the same music scores differently; --loudness-dbfs brings every excerpt to one RMS level.",
    "profile": "Level: profile brings every excerpt to {loudness} dBFS RMS before probing, so a recording's level "
               "does not enter its profile.",
}


def has_finished_run(out: Path) -> bool:
    return (out / "results.parquet").exists() or (out / "profile_scores.parquet").exists()


def level_note(run: dict) -> str:
    """One sentence on how the run treated the recordings' level (score keeps it unless asked, profile normalises)."""
    command, loudness = run.get("command"), run.get("loudness_dbfs")
    if command == "score" and loudness is not None:
        return (f"Level: every clip was brought to {loudness:g} dBFS RMS before perturbing (--loudness-dbfs), so a "
                "recording's level does not enter the scores.")
    if command == "score":
        return LEVEL_NOTE["score"]
    if command == "profile" and "loudness_dbfs" in run and loudness is None:
        return ""  # a model over MIDI tokens: no recording, no level
    if command == "profile":  # runs written before run.json recorded it were normalised at the default, -20 dBFS
        return LEVEL_NOTE["profile"].format(loudness=f"{-20.0 if loudness is None else loudness:g}")
    return ""


def write_report(out_dir: str | os.PathLike, max_pieces: int = 12) -> Path:
    """``out_dir/report.html`` for a finished ``score`` or ``profile`` run (see the module's docstring); a folder that
    is not there, or holds no finished run, raises `lossprofile.errors.BadInputError` (nothing written)."""
    from .columns import dictionary
    from .runner import piece_summary

    out = Path(out_dir)
    if not out.is_dir():
        raise MissingInputError(f"{out}: folder not found (give the --out folder of a finished `lossprofile score` "
                                "or `lossprofile profile` run)")
    if not has_finished_run(out):
        raise BadInputError(f"{out}: no finished run here (neither results.parquet nor profile_scores.parquet); run "
                            f"`lossprofile score` or `lossprofile profile` with --out {out} first")
    run = json.loads((out / RUN_FILE).read_text()) if (out / RUN_FILE).exists() else {}
    units = run.get("units", CODEC_UNITS)
    parts = [f"<h1>lossprofile report: {html.escape(out.name)}</h1>"]
    if level_note(run):
        parts.append(f"<p>{html.escape(level_note(run))}</p>")
    settings = pd.DataFrame([(k, json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in run.items()
                             if k not in ("paths", "perturbations")], columns=["setting", "value"])
    parts.append("<h2>Run</h2>" + html_table(settings.astype(str), "run", False))
    if run.get("perturbations"):
        perts = pd.DataFrame(run["perturbations"])
        perts = perts[[c for c in perts.columns if perts[c].notna().any()]]
        parts.append("<h3>Perturbations</h3>" + html_table(perts, "perturbations", False))
    columns: list[str] = []
    if (out / "results.parquet").exists():
        results = pd.read_parquet(out / "results.parquet")
        summary = piece_summary(results)
        keys = [c for c in summary.columns if c in results.columns]
        summary = summary.merge(region_means(results, keys), on=keys, how="left")
        keep = [c for c in summary.columns if summary[c].notna().any() and summary[c].nunique(dropna=False) > 1
                or c in ("piece", "perturbation", "mean_nll_clean", "mean_nll_perturbed", "mean_delta", "peak_delta",
                         "assimilation_delta", "recovery_delta")]
        summary = summary[keep]
        columns += list(summary.columns) + ["frame", "nll_clean", "nll_perturbed", "delta"]
        shown = min(max_pieces, summary["piece"].nunique())
        parts += [f"<h2>Pieces ({summary['piece'].nunique()}; one row per piece and perturbation; click a header to sort)</h2>",
                  html_table(summary, "pieces", units=units),
                  f"<h2>Loss curves and audio (first {shown} pieces; each piece's longest perturbation)</h2>",
                  *_piece_sections(out, results, run, max_pieces)]
    else:
        table = pd.read_parquet(out / "profile_scores.parquet")
        # the headline score first, after what names the piece; the features it is read from after it
        names = [c for c in ("piece", "path") if c in table]
        table = table[names + [c for c in ("profile_score",) if c in table]
                      + [c for c in table.columns if c not in names and c != "profile_score"]]
        columns += list(table.columns)
        parts += [f"<h2>Pieces ({len(table)}; click a header to sort; higher profile_score = better)</h2>",
                  html_table(table, "pieces", units=units)]
        if (out / CURVES_FILE).exists():
            shown = min(max_pieces, len(table))
            parts += [f"<h2>Why each clip scored as it did, its loss curve and audio (first {shown} clips)</h2>",
                      *_clip_sections(out, table, pd.read_parquet(out / CURVES_FILE), run, max_pieces)]
    errors_path = out / "errors.csv"
    errors = pd.read_csv(errors_path) if errors_path.exists() and errors_path.stat().st_size else pd.DataFrame()
    parts.append(f"<h2>Skipped ({len(errors)})</h2>" + (html_table(errors[["piece", "path", "error"]], "errors", False)
                                                      if len(errors) else "<p>none</p>"))
    parts.append("<h2>Columns: units and meaning</h2>"
                 + html_table(dictionary(dict.fromkeys(columns), units), "columns", False))
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>lossprofile report</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}<script>{SORT_SCRIPT}</script></body></html>")
    path = out / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page)
    os.replace(tmp, path)
    return path


def paths_of(pieces: Sequence) -> dict[str, str]:
    return {p.name: str(Path(p.path).resolve()) for p in pieces}
