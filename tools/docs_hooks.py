"""MkDocs hooks: the pages and tables of the documentation site that are generated at build time.

Nothing quoted from a result is typed into ``docs/``: the hooks read it from the files ``make figures`` and
``make validation`` write, and from the library itself, each time the site is built (``make docs``).

Files added to the site (``on_files``):

- ``notebooks/<name>.ipynb``: each notebook, from ``notebooks/executed/`` (written by ``make figures``) where
  present, else the committed ``notebooks/<name>.ipynb`` with its stored outputs (nbval's small defaults); a
  first cell says which one the page shows. ``mkdocs-jupyter`` renders them.
- ``figures/*.png``: the figures of ``figures/``.
- ``cards/<model>/index.md``: each embedded model's ``MODEL_CARD.md`` (and the images beside it).

Markers replaced in any page (``on_page_markdown``), each an HTML comment on a line of its own:

- ``<!-- gen:kind-table -->``: ``lossprofile.perturb.KIND_TABLE``, one row per waveform kind;
- ``<!-- gen:score-kinds -->``: ``lossprofile.perturb.SCORE_KINDS``;
- ``<!-- gen:preset-table -->``: ``lossprofile.perturb.PRESETS``, with the perturbations each one holds;
- ``<!-- gen:summary HEADING -->``: the section of ``figures/summary.md`` under that heading;
- ``<!-- gen:include PATH -->``: a markdown file of the repository, its first title dropped and its headings
  one level lower;
- ``<!-- gen:lofo-means -->``: mean leave-one-family-out AUROC per score and modality
  (``results/validation/*/lofo.csv``);
- ``<!-- gen:lofo MODALITY -->``: that modality's AUROC per held-out degradation family (strength ``all``);
- ``<!-- gen:csv PATH [column=value ...] -->``: a CSV of the repository as a table (rows
  filtered: ``column=a,b`` keeps the rows whose column is a or b);
- ``<!-- gen:json PATH -->``: a JSON file of the repository as a code block;
- ``<!-- gen:notebook-sources -->``: which file each notebook page was rendered from.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import tempfile
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "lib") not in sys.path:
    sys.path.insert(0, str(ROOT / "lib"))  # the library of this checkout, not another installed copy

NOTEBOOK_SOURCES: dict[str, str] = {}
_TMP = Path(tempfile.mkdtemp(prefix="lossprofile-docs-"))
MARKER = re.compile(r"^<!-- gen:([a-z-]+)(.*?)-->\s*$", re.M)


def _notebook_page(source: Path, executed: bool) -> Path:
    """A copy of the notebook with a first cell saying which version the page shows (outputs untouched)."""
    import nbformat

    nb = nbformat.read(source, as_version=4)
    rel = source.relative_to(ROOT).as_posix()
    if executed:
        text = (f"*This page shows `{rel}`: the notebook as `make figures` executed it, with the full-size "
                "parameters, its figures and outputs.*")
    else:
        text = (f"*This page shows `{rel}` with its stored outputs: `notebooks/executed/` was absent when the "
                "site was built, so these are the outputs of the notebook's own small defaults (the ones nbval "
                "checks in `make test`), not the full-size run. Run `make figures`, then `make docs`, to see "
                "the executed notebook.*")
    cell = nbformat.v4.new_markdown_cell(text)
    cell.id = "docs-source-note"
    nb.cells.insert(0, cell)
    out = _TMP / "notebooks" / source.name  # mkdocs-jupyter's include pattern is notebooks/*.ipynb
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    return out


@event_priority(100)  # before mkdocs-jupyter's on_files, which wraps the notebooks it finds
def on_files(files, config):
    executed_dir = ROOT / "notebooks" / "executed"
    NOTEBOOK_SOURCES.clear()
    for stored in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")):
        executed = executed_dir / stored.name
        source = executed if executed.is_file() else stored
        NOTEBOOK_SOURCES[stored.stem] = source.relative_to(ROOT).as_posix()
        page = _notebook_page(source, source is executed)
        # a plain File under the temporary folder: mkdocs-jupyter's wrapper reads abs_src_path as a plain file's
        files.append(File(f"notebooks/{page.name}", src_dir=str(_TMP), dest_dir=config.site_dir,
                          use_directory_urls=config.use_directory_urls))
    for png in sorted((ROOT / "figures").glob("*.png")):
        files.append(File.generated(config, f"figures/{png.name}", abs_src_path=str(png)))
    for card in sorted((ROOT / "lib" / "lossprofile" / "checkpoints").glob("*/MODEL_CARD.md")):
        name = card.parent.name
        files.append(File.generated(config, f"cards/{name}/index.md", content=card.read_text()))
        for image in sorted(card.parent.glob("*.png")):
            files.append(File.generated(config, f"cards/{name}/{image.name}", abs_src_path=str(image)))
    return files


def _first_paragraph(fn) -> str:
    """A docstring's first paragraph on one line, Sphinx roles (:func:`x`) as code."""
    text = (getattr(fn, "__doc__", None) or "").strip().split("\n\n")[0].replace("\n", " ")
    return re.sub(r":[a-z]+:`~?\.?([^`]+)`", r"`\1`", text)


def _table(header: list[str], rows: list[list]) -> str:
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def kind_table() -> str:
    from lossprofile.perturb import KIND_TABLE, waveform

    rows = []
    for name, kind in KIND_TABLE.items():
        fn = next((getattr(waveform, n) for n in kind.run.__code__.co_names
                   if callable(getattr(waveform, n, None)) and not n.startswith("_")), None)
        doc = _first_paragraph(fn) if fn else ""
        rows.append([f"`{name}`", f"`waveform.{fn.__name__}`" if fn else "", ", ".join(f"`{n}`" for n in kind.needs)
                     or "–", kind.span, kind.min_segments, doc])
    return _table(["kind", "function", "needs", "span (windows)", "min. segments", "what it does"], rows)


def score_kinds() -> str:
    from lossprofile.perturb import SCORE_KINDS, score

    rows = []
    for name in SCORE_KINDS:
        fn = getattr(score, name, None)
        rows.append([f"`{name}`", _first_paragraph(fn) if fn else ""])
    return _table(["score kind", "what it does"], rows)


def preset_table() -> str:
    from lossprofile.perturb import AUTHORS_NOISE_DBFS, PRESETS, preset

    rows = []
    for name, (text, _) in PRESETS.items():
        try:
            perts = preset(name)
            note = ""
        except ValueError:  # a preset whose level depends on the data kind
            perts = preset(name, data_kind=sorted(AUTHORS_NOISE_DBFS)[0])
            note = " (per data kind)"
        kinds = sorted({p.kind for p in perts})
        rows.append([f"`{name}`", text, f"{len(perts)}{note}", ", ".join(f"`{k}`" for k in kinds)])
    return _table(["preset", "what it holds", "perturbations", "kinds"], rows)


def summary_section(heading: str) -> str:
    text = (ROOT / "figures" / "summary.md").read_text()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(#+)\s+(.*)$", line)
        if m and m.group(2).strip() == heading:
            level = len(m.group(1))
            body = []
            for nxt in lines[i + 1:]:
                n = re.match(r"^(#+)\s", nxt)
                if n and len(n.group(1)) <= level:
                    break
                body.append(nxt)
            return "\n".join(body).strip()
    raise ValueError(f"figures/summary.md has no section {heading!r}")


def include_markdown(path: str) -> str:
    lines = (ROOT / path).read_text().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join("#" + line if re.match(r"^#+\s", line) else line for line in lines).strip()


def _lofo():
    import pandas as pd

    frames = [pd.read_csv(f) for f in sorted((ROOT / "results" / "validation").glob("*/lofo.csv"))]
    if not frames:
        raise FileNotFoundError("no results/validation/*/lofo.csv")
    table = pd.concat(frames)
    return table[table["strength"].astype(str) == "all"]


def lofo_means() -> str:
    lofo = _lofo()
    means = lofo.groupby(["score", "modality"])["auroc"].mean().unstack("modality")
    families = lofo.groupby("modality")["held_out_family"].nunique()
    order = means.max(axis=1).sort_values(ascending=False).index
    header = ["score"] + [f"{i} ({families[i]} families)" for i in means.columns]
    rows = [[f"`{s}`"] + ["" if v != v else f"{v:.2f}" for v in means.loc[s]] for s in order]
    return _table(header, rows)


def lofo_modality(modality: str) -> str:
    lofo = _lofo()
    lofo = lofo[lofo["modality"] == modality]
    scores = [s for s in ("profile_score", "rank_average", "mean_nll") if s in set(lofo["score"])]
    rows = []
    for family, group in lofo.groupby("held_out_family"):
        g = group.set_index("score")
        row = [family, int(g["pairs"].iloc[0])]
        for s in scores:
            r = g.loc[s]
            row.append(f"{r.auroc:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]")
        r = g.loc["profile_score"]
        row.append(f"{r.minus_mean_nll:+.2f} [{r.diff_ci_low:+.2f}, {r.diff_ci_high:+.2f}]")
        rows.append(row)
    return _table(["held-out family", "pairs"] + [f"`{s}` AUROC [95% CI]" for s in scores]
                  + ["`profile_score` − `mean_nll` [95% CI]"], rows)


def csv_table(args: list[str]) -> str:
    import pandas as pd

    path, filters = args[0], dict(a.split("=", 1) for a in args[1:])
    table = pd.read_csv(ROOT / path)
    for column, value in filters.items():
        table = table[table[column].astype(str).isin(value.split(","))]
    rows = [["" if v != v else (f"{v:.2f}" if isinstance(v, float) else v) for v in row]
            for row in table.itertuples(index=False)]
    return _table(list(table.columns), rows) + f"\n\n*From `{path}`.*"


def json_block(path: str) -> str:
    data = json.loads((ROOT / path).read_text())
    return f"```json\n{json.dumps(data, indent=1)}\n```\n\n*From `{path}`.*"


def notebook_sources() -> str:
    rows = [[f"[{stem}](notebooks/{stem}.ipynb)", f"`{src}`",
             "executed by `make figures`" if "/executed/" in src else "stored outputs (small defaults)"]
            for stem, src in NOTEBOOK_SOURCES.items()]
    return _table(["notebook", "rendered from", "outputs"], rows)


def render(name: str, args: list[str]) -> str:
    if name == "kind-table":
        return kind_table()
    if name == "score-kinds":
        return score_kinds()
    if name == "preset-table":
        return preset_table()
    if name == "summary":
        return summary_section(" ".join(args))
    if name == "include":
        return include_markdown(args[0])
    if name == "lofo-means":
        return lofo_means()
    if name == "lofo":
        return lofo_modality(args[0])
    if name == "csv":
        return csv_table(args)
    if name == "json":
        return json_block(args[0])
    if name == "notebook-sources":
        return notebook_sources()
    raise ValueError(f"unknown docs marker gen:{name}")


def on_page_markdown(markdown, page, config, files):
    def replace(match: re.Match) -> str:
        return render(match.group(1), shlex.split(match.group(2).strip()))

    return MARKER.sub(replace, markdown)
