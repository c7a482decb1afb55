"""Publishing the report: papermill executes each section's notebook (`report.Section` formats
what it shows), nbconvert merges them into one HTML page, headless Chromium prints the PDF.

Apart from `report` so that a section's kernel, which imports `report` and runs in a process of
its own for every notebook, does not import nbconvert, papermill and nbformat as well: 2.4 of
its 5.9 s of imports here (2026-12-06), spent again by every kernel `make report` and the tests
start.
"""
from __future__ import annotations

import concurrent.futures
import datetime as dt
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import matplotlib
import nbconvert
import nbformat
import numpy as np
import pandas as pd
import yaml
import papermill as pm
import torch
import torchvision
from bs4 import BeautifulSoup
from nbconvert import HTMLExporter
from tqdm.auto import tqdm

from . import accounting
from . import analysis
from . import data
from . import executed
from . import executors
from . import names
from . import parallel
from . import pipeline
from . import runtimes
from . import stats
from . import store
from .config import ConfigError, is_profile_file, load_profile, profile_label
from .measure import hardware
from .report import NOTEBOOKS, _and, _literal, _test_split, pruned_words
from .sections import SECTIONS


def notebook_paths(sections: list[str]) -> dict[str, Path]:
    found = {p.name[0]: p for p in sorted(NOTEBOOKS.glob("[A-Z]_*.ipynb"))}
    missing = [s for s in sections if s not in found]
    if missing:
        raise ConfigError(f"no notebook for section(s) {', '.join(missing)} in {NOTEBOOKS}")
    return {s: found[s] for s in sections}


def execute(profile: str, sections: list[str], overrides: dict, out: Path,
            models_dir: Path, data_dir: Path | None, progress: bool = True
            ) -> tuple[dict[str, Path], list[str]]:
    """Run each section's notebook with papermill into out/notebooks/ (atomically), unless the
    notebook there was executed from the same inputs (`executed`). Returns the notebooks and
    the sections whose notebook was reused.

    Kernels run side by side, one per core: each spends most of its time importing and
    drawing on one thread (the smoke report's eight took 81 s one after another, 61 s two at a
    time). A section that times this CPU (section G's matrix-multiply ceiling) runs alone,
    after the others. The first failure stops the run once the kernels under way finish."""
    done, reused, todo = {}, [], []
    if is_profile_file(profile):  # the kernels resolve it from another working directory
        profile = str(Path(profile).resolve())
    params = {"profile": profile, "overrides": overrides, "out": str(out.resolve()),
              "models_dir": str(store.resolved(models_dir)),
              # the folder this run's stages read (a kernel would take data/ from the repository)
              "data_dir": str(Path(data_dir or data.default_root()).resolve())}
    p, cache = load_profile(profile, overrides), store.Store(models_dir)
    for letter, nb in notebook_paths(sections).items():
        done[letter] = out / "notebooks" / nb.name
        inputs = executed.inputs_digest(nb, letter, params, p, out, cache)
        if executed.reusable(done[letter], inputs, out):
            reused.append(letter)
        else:
            todo.append((letter, nb, done[letter], inputs))
    alone = [t for t in todo if SECTIONS[t[0]].roofline]
    beside = [t for t in todo if t not in alone]
    with tqdm(total=len(todo), desc="notebooks", disable=not progress) as bar:
        _execute_beside(beside, params, out, bar)
        for t in alone:
            _execute_one(*t, params, out)
            bar.update()
    return done, reused


def _execute_beside(todo: list[tuple], params: dict, out: Path, bar) -> None:
    """`_execute_one` for each of `todo`, one kernel per core; the first failure is raised once
    the kernels under way have finished, and those not started are not."""
    pool = concurrent.futures.ThreadPoolExecutor(max(1, min(len(todo), parallel.cores())))
    try:
        # papermill is thread-safe but for `cwd`, which every kernel here shares (its #473)
        pending = {pool.submit(_execute_one, *t, params, out) for t in todo}
        while pending:
            finished, pending = concurrent.futures.wait(
                pending, return_when=concurrent.futures.FIRST_EXCEPTION)
            for f in finished:
                f.result()  # raises the kernel's failure
                bar.update()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _execute_one(letter: str, nb: Path, target: Path, inputs: str, params: dict,
                 out: Path) -> None:
    """One notebook, executed into a temporary file renamed to `target` on success and stamped
    with its inputs and the files written under `out` while it ran (with kernels side by side,
    also theirs: a file another kernel wrote in that time makes both run again when it is
    gone, never neither)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.running.ipynb")  # renamed only on success
    since = time.time()
    try:
        # The kernel talks to us over loopback only; its "TCP without encryption" log line
        # is noise in a batch run. So is "KeyboardInterrupt caught in kernel.", an ERROR it
        # logs when jupyter_client's SIGINT, sent to every kernel it shuts down, lands while
        # a message is handled (two users saw it after reports that succeeded, 2026-12-07).
        # A cell's failure reaches papermill as a message, never through this log.
        pm.execute_notebook(str(nb), str(tmp), parameters=params, kernel_name="python3",
                            progress_bar=False, cwd=os.getcwd(),
                            extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
        executed.stamp(tmp, inputs, executed.written_since(out, since))
        os.replace(tmp, target)
    except pm.PapermillExecutionError as e:
        raise ConfigError(f"section {letter}: {e.evalue}") from None
    finally:
        tmp.unlink(missing_ok=True)


def measured_at(results: pd.DataFrame) -> str:
    """The commits whose code measured the rows (each row's metrics or timing record), most
    rows first: a report rendered from a cache shows numbers of older code."""
    counts = results.git_commit.fillna("unknown").value_counts()
    return "; ".join(f"{c} ({n} row{'s' * (n != 1)})" for c, n in counts.items())


def environment(p: dict, durations: dict[str, float], reused: tuple | list = (),
                results: pd.DataFrame | None = None) -> str:
    hw = hardware()
    measured = [] if results is None else [("git commit of the measurements",
                                            measured_at(results))]
    rows = [("profile", profile_label(p["profile"])),
            ("git commit (rendered)", pipeline.git_commit()), *measured,
            ("rendered", dt.datetime.now().strftime("%Y-%m-%d %H:%M")),
            ("python", platform.python_version()), ("torch", torch.__version__),
            ("torchvision", torchvision.__version__), ("papermill", pm.__version__),
            ("nbconvert", nbconvert.__version__), ("matplotlib", matplotlib.__version__),
            ("numpy", np.__version__), ("pandas", pd.__version__),
            ("CPU", f"{hw['cpu']} ({hw['cpu_count']} logical cores)"), ("GPU", hw["gpu"]),
            ("latency threads", p["threads"]),
            ("training device", p["device"] if p["device"] != "auto" else
             ("cuda" if torch.cuda.is_available() else "cpu"))]
    rows += [(f"section {k} notebook wall time",
              f"{v:.1f} s" + (" (when executed; reused: its inputs are unchanged)"
                              if k in reused else "")) for k, v in durations.items()]
    body = "\n".join(f"| {_literal(k)} | {_literal(v)} |" for k, v in rows)
    # plain text, not code spans: a PDF reader copied `dataset=fashion-mnist ,` (each span's
    # padding read as a space), so the values could not be pasted into --set
    params = ", ".join(_literal(f"{k}={_yaml(v)}") for k, v in p.items()
                       if k not in ("profile", "description"))
    return (f'<a id="environment"></a>\n\n## Appendix: environment\n\n| | |\n|---|---|\n{body}\n\n'
            f"Profile parameters: {params}.")


def _yaml(value) -> str:
    """A parameter as a profile or `--set` writes it (null, true, {resnet18: 0.9}), not as
    Python prints it (None, True, {'resnet18': 0.9}): a reviewer read the reprs as raw."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**6,
                          sort_keys=False).removesuffix("\n").removesuffix("\n...")


def time_appendix(out: Path) -> str:
    """Where the time went: the run's entries per stage kind and per section, computed in this
    run or read from the cache (their recorded cost is from when they were computed)."""
    path = out / "stages.csv"
    if not path.is_file():
        return ""
    df = pd.read_csv(path)
    new = df[df.computed.astype(bool)]
    text = (f'<a id="time"></a>\n\n## Appendix: where the time went\n\n'
            f"This run needed {len(df)} entries of the models folder (trained or derived "
            f"models, encoded files, evaluations, curves): {len(new)} were computed in it, "
            f"taking {new.seconds.sum():,.0f} s of stage time (summed over the processes that "
            f"computed them, each on its own threads: not the run's wall time), and "
            f"{len(df) - len(new)} read from the cache, which had recorded "
            f"{df.seconds[~df.computed.astype(bool)].sum():,.0f} s for them when they were "
            f"computed. `stages.csv` gives each entry's seconds, threads and device. Images: "
            f"those put through a model (training steps, predictions, calibration), not "
            f"latency runs.\n\n")
    for by, title in (("kind", "stage kind"), ("section", "section that first needs it")):
        t = accounting.summary(df, by).reset_index().rename(columns={by: title})
        t["seconds"] = t.seconds.round(1)
        t["computed seconds"] = t["computed seconds"].round(1)
        # "697", not "697.0"; "–" where nothing went through a model (to_html's na_rep
        # does not reach pandas' nullable integers) or nothing was timed
        t["images/s"] = t["images/s"].map(
            lambda v: "–" if pd.isna(v) or not np.isfinite(v) else f"{v:,.0f}")
        text += f"**Per {title}**\n\n" + t.to_html(index=False, border=0, classes="summary",
                                                   na_rep="–") + "\n\n"
    return text


def summary_table(results: pd.DataFrame, sections: list[str]) -> str:
    # one row per distinct model file: sections share a variant's artifact (B's baseline is C's
    # 0%), while F's and G's dense controls, fine-tuned differently, are two rows
    key = ["model", "dataset", "prune_method", "prune_ratio", "quant", "codec", "qp", "runtime",
           "control", "kd"] + (["artifact_key"] if "artifact_key" in results else [])
    results = results.copy()
    results["control"] = analysis.controls_of(results)
    results["kd"] = [names.distilled(r) for r in results.itertuples()]
    # one row per NNCodec setting (groupby drops NaN keys: "" where a codec has no qp)
    results["qp"] = results.qp.map(lambda q: "" if pd.isna(q) else f"{int(q)}") \
        if "qp" in results else ""
    # section H's many seeded runs are summarized in its own tables; further seeds of A–E in
    # theirs (the profile's seed comes first)
    d = results[results.section.isin([s for s in sections if SECTIONS[s].summarized])]
    d = d[d.seed == d.seed.iloc[0]].drop_duplicates(subset=key) if len(d) else d
    # this report's sections: the latency shown is the first of them's (rows an earlier run
    # left in results.csv named sections whose timing the table did not show)
    sections_of = results[results.section.isin(sections)].groupby(key).section.agg(
        lambda s: ",".join(sorted(set(s))))
    t = pd.DataFrame({
        "model": d.model.map(names.model), "dataset": d.dataset.map(names.dataset),
        "pruned": [pruned_words(r) for r in d.itertuples()],
        "quant": d.quant,
        "codec": [f"{r.codec} qp {r.qp}" if r.qp else r.codec for r in d.itertuples()],
        "runtime": d.runtime.replace({r.key: r.short for r in runtimes.RUNTIMES.values()
                                      if r.exported}),
        "top-1 (%)": (d.accuracy * 100).round(2), "size (MB)": (d.size_bytes / 1e6).round(3),
        "ratio (×)": d.compression_ratio.round(1),
        "latency (ms)": d.latency_ms.round(2), "sparsity (%)": (d.sparsity * 100).round(1),
        "sections": [sections_of[tuple(getattr(r, k) for k in key)] for r in d.itertuples()],
    })
    return t.to_html(index=False, border=0, classes="summary", escape=True)  # values as text


NO_ALT = "No description has been provided for this image"  # nbconvert's stand-in
FIGURE = re.compile(r"Figure [A-Z]\d+\.")  # a caption (`report.Section.caption`)

PRINT_CSS = """
<style>
body { max-width: 1050px; margin: auto; }
img { max-width: 100%; height: auto; page-break-inside: avoid; break-inside: avoid; }
table { font-size: 11px; border-collapse: collapse; }
tr { break-inside: avoid; page-break-inside: avoid; }  /* a row split at a page's foot (G1) */
table.summary td, table.summary th { padding: 2px 6px; border-bottom: 1px solid #ddd; }
.jp-Cell { break-inside: avoid-page; }
.jp-OutputArea-output { overflow-x: visible !important; }
table.summary { font-size: 10px; }
@media print { body { max-width: none; } .jp-Cell { padding: 0 !important; } }
</style>
"""


def _spread_words(results: pd.DataFrame, sections: list[str]) -> str:
    spread = analysis.latency_spread(results[results.section.isin(sections)])
    return ("" if np.isnan(spread) or spread <= stats.TIMING_FLOOR else
            f"; one file timed in two sections differs by up to {spread:.0%} between them "
            f"here, so compare latencies within a section")


def _section_links(letters: str) -> str:
    """"Section A" or "Sections A, B and C", each linked to its heading."""
    links = [f"[{s}](#section-{s})" for s in letters]
    return f"Section{'s' * (len(links) > 1)} {_and(links)}"


def render(out: Path, p: dict, sections: list[str], notebooks: dict[str, Path],
           reused: tuple | list = ()) -> Path:
    """Merge the executed notebooks into out/index.html (code hidden, images embedded);
    `reused`: the sections whose notebook an earlier run executed from the same inputs."""
    results = pd.read_csv(out / "results.csv")
    spent = time_appendix(out)
    durations, cells = _section_cells(sections, notebooks)
    grid = out / "compression_points.csv"  # section F's files, written by this run
    table = summary_table(results, sections)
    opening = [nbformat.v4.new_markdown_cell(text) for text in (
        findings_text(results, sections, p, pd.read_csv(grid) if grid.is_file() else None,
                      table),
        summary_text(results, sections, table)) if text]
    appendix = nbformat.v4.new_markdown_cell(environment(p, durations, reused, results))
    timing = [nbformat.v4.new_markdown_cell(spent)] if spent else []
    merged = nbformat.v4.new_notebook(cells=[_title_cell(results, p, sections, bool(spent)),
                                             *_other_sections(results, sections, p, out),
                                             *opening, *cells, appendix, *timing])
    merged.metadata["title"] = f"approx-cnn report ({profile_label(p['profile'])})"
    exporter = HTMLExporter(template_name="lab", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(merged)
    body = _alt_texts(body).replace("</head>", PRINT_CSS + "</head>", 1)
    index = out / "index.html"
    store.write_text(index, body)
    return index


def findings_text(results: pd.DataFrame, sections: list[str], p: dict,
                  points: pd.DataFrame | None, table: str | None = None) -> str | None:
    """The report's Findings (None where the rows support none: an empty heading opened a
    report of section H alone, a contributor's new section, 2026-12-08). `table`: the
    summary's (`summary_table`), whose terms it defines too; made here if not given."""
    found = analysis.findings(results[results.section.isin(sections)], float(p["ratio"]),
                              int(p["seed"]), points)
    if not found:
        return None
    listed = "\n".join(f"- {text} ({_section_links(s)})" for s, text in found)
    if table is None:
        table = summary_table(results, sections)
    terms = names.terms_used(listed + table)
    return "## Findings\n\n" + listed + (f"\n\n{terms}" if terms else "")


def summary_text(results: pd.DataFrame, sections: list[str],
                 table: str | None = None) -> str | None:
    """The Summary: one row per model file of the sections it covers (`Spec.summarized`),
    None where the report has none of them (it said "section  (" over an empty table)."""
    shown = [s for s in sections if SECTIONS[s].summarized]
    own = [s for s in sections if not SECTIONS[s].summarized]
    if not shown:
        return None
    return (f"## Summary\n\nEvery distinct model variant of section{'s' * (len(shown) > 1)} "
            f"{names.joined(shown)} (top-1 on "
            f"{_test_split(results)}; size = the saved file in MB (10⁶ bytes); latency = "
            f"median batch-1 CPU forward time, as timed with the first section listed (each "
            f"section's variants are timed together{_spread_words(results, sections)})"
            + (f"; the runs of section{'s' * (len(own) > 1)} {names.joined(own)} are "
               f"summarized in {'its' if len(own) == 1 else 'their'} own tables"
               if own else "") + ").\n\n"
            + (summary_table(results, sections) if table is None else table))


def _alt_texts(body: str) -> str:
    """Each figure's caption as its image's alternative text: nbconvert's lab template takes
    none from an output, and wrote "No description has been provided for this image" on
    every figure a screen reader meets."""
    soup = BeautifulSoup(body, "html.parser")
    for img in soup.find_all("img", alt=NO_ALT):
        caption = img.find_next(
            lambda tag: tag.name == "em" and FIGURE.match(tag.get_text()) is not None)
        if caption is not None:
            img["alt"] = caption.get_text()
    return str(soup)


def _section_cells(sections: list[str], notebooks: dict[str, Path]
                   ) -> tuple[dict[str, float], list]:
    """Each section notebook's papermill duration, and its cells as the report shows them."""
    durations, cells = {}, []
    for letter in sections:
        nb = nbformat.read(notebooks[letter], as_version=4)
        durations[letter] = nb.metadata.get("papermill", {}).get("duration") or 0.0
        for c in nb.cells:
            if c.cell_type == "code":
                # progress bars and warnings belong in the log, not in the report
                c.outputs = [o for o in c.outputs if o.get("name") != "stderr"]
            tags = set(c.metadata.get("tags", []))
            if tags & {"parameters", "injected-parameters", "remove-in-report"}:
                continue
            cells.append(c)
    return durations, cells


def _opening(sections: list[str]) -> str:
    """What the report is, naming only the added sections (`Spec.beyond`) it shows; the course
    project is named only where the report shows some of its sections (a user's report of
    section C alone, on their own images, opened as "a re-run of its sections A–E")."""
    beyond = [f"section {s}: {SECTIONS[s].beyond}" for s in sections if SECTIONS[s].beyond]
    original = [s for s in sections if not SECTIONS[s].beyond]
    every = [s for s in SECTIONS if not SECTIONS[s].beyond]
    how = (" with validation-based model selection, test-split accuracy with 95% intervals, "
           "paired significance tests and median CPU latencies")
    if not original:
        return f"A study of CNN compression ({'; '.join(beyond)}){how}."
    what = ("A re-run of a course project's study (its sections A–E)" if original == every
            else f"A re-run of section{'s' * (len(original) > 1)} {names.joined(original)} of a "
                 f"course project's study (its sections A–E)")
    return (what + how + (f", and what it left undone ({'; '.join(beyond)})" if beyond else "")
            + ".")


def _other_sections(results: pd.DataFrame, sections: list[str], p: dict, out: Path) -> list:
    """A note where the folder's results.csv also holds sections this report does not show
    (an earlier run's, kept beside it: a new user ran C,G then F into one folder and found
    index.html with F alone, results.csv with all three, and no word of it)."""
    others = sorted(set(results.section) - set(sections))
    if not others:
        return []
    return [nbformat.v4.new_markdown_cell(
        f"This folder's `results.csv` also holds the rows of section"
        f"{'s' * (len(others) > 1)} {_and(others)} from an earlier run, which this report does "
        f"not show; `approx report --profile {p['profile']} --sections "
        f"{','.join(sorted({*sections, *others}))} --out {out}` with the same settings renders "
        f"them together.")]


def _title_cell(results: pd.DataFrame, p: dict, sections: list[str], timed: bool):
    """The report's title, what it is, and its contents (the time appendix where `timed`)."""
    results = results[results.section.isin(sections)]  # another run's sections: not shown
    def heading(s: str) -> str:
        rows = results[results.section == s]
        return SECTIONS[s].heading(dict.fromkeys(rows.model),
                                   rows.dataset.iloc[0] if len(rows) else None)
    toc = "\n".join(f"{i + 1}. [Section {s}. {heading(s)}](#section-{s})"
                    for i, s in enumerate(sections))
    return nbformat.v4.new_markdown_cell(
        f"# Approximate computing for CNNs: pruning, quantization and compression of "
        f"{_and([names.model(m) for m in dict.fromkeys(results.model)])}\n\n"
        f"Profile **{_literal(profile_label(p['profile']))}**"
        + (f": {_literal(p['description'])}" if p["description"] else "") + "\n\n"
        f"{_opening(sections)} Generated by approxlib on "
        f"{dt.date.today().isoformat()}.\n\n**Contents**\n\n{toc}\n"
        f"{len(sections) + 1}. [Appendix: environment](#environment)"
        + (f"\n{len(sections) + 2}. [Appendix: where the time went](#time)"
           if timed else ""))


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium() -> str:
    """The Chromium that prints the PDF; a missing one is a ConfigError, which `build` raises
    before any stage runs (it once came after the whole study had run)."""
    exe = find_chromium()
    if exe is None:
        raise ConfigError("no Chromium found for the PDF; install Debian's `chromium` "
                          "(make report does) or pass --no-pdf")
    return exe


def to_pdf(index: Path, pdf: Path, timeout: int = 180) -> Path:
    """Print the HTML with headless Chromium (Debian's package; works offline)."""
    exe = chromium()
    with tempfile.TemporaryDirectory() as profile_dir, store.atomic_path(pdf) as tmp:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile_dir}",
               "--no-pdf-header-footer", "--print-to-pdf-no-header",
               f"--print-to-pdf={tmp}", index.resolve().as_uri()]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0 or not tmp.exists() or tmp.stat().st_size == 0:
            raise ConfigError(f"Chromium could not print {index} (exit {res.returncode})")
    return pdf


def stages(p: dict, sections: list[str], models_dir: Path | str, out: Path,
           data_dir: Path | None, progress: bool = True, executor: str = executors.LOCAL,
           options: dict | None = None) -> tuple:
    """Every stage of `sections` (cached ones read), results.csv and the time accounting, on
    `executor` (an `executors.EXECUTORS` key; `options`: its run's keyword arguments, as its
    `options` makes them from the command line). Returns the rows and the runner."""
    since, models_dir = time.time(), store.resolved(models_dir)
    df, runner = executors.of(executor).run(p, sections, models_dir, out, data_dir, progress,
                                            **(options or {}))
    accounting.write(p, sections, store.Store(models_dir), out, since, data_dir)
    return df, runner


def build(profile: str, sections: list[str], overrides: dict, out: Path, models_dir: Path | str,
          data_dir: Path | None, pdf: bool = True, progress: bool = True,
          executor: str = executors.LOCAL, options: dict | None = None) -> dict:
    """`approx report`: stages (cached) → notebooks (papermill) → index.html → report.pdf.

    The stages are computed first (`stages`: on `executor` with `options`); the notebooks then
    read the cache."""
    p = load_profile(profile, overrides)
    if pdf:
        chromium()
    t0 = time.perf_counter()
    stages(p, sections, models_dir, out, data_dir, progress, executor, options)
    t_stages = time.perf_counter() - t0
    notebooks, reused = execute(profile, sections, overrides, out, models_dir, data_dir,
                                progress)
    index = render(out, p, sections, notebooks, reused)
    made = {"index": index, "results": out / "results.csv", "stages_s": t_stages,
            "reused": reused}
    if pdf:
        made["pdf"] = to_pdf(index, out / "report.pdf")
    elif (out / "report.pdf").exists():  # an earlier run's, beside a page it no longer shows
        old = out / "report.pdf"
        made_at = dt.datetime.fromtimestamp(old.stat().st_mtime)
        aside = old.with_name(f"report-{made_at:%Y%m%dT%H%M%S}.pdf")
        os.replace(old, aside)
        store.LOG.warning("%s is an earlier run's PDF, which this page (--no-pdf) does not "
                          "match: renamed %s", old, aside.name)
    made["total_s"] = time.perf_counter() - t0
    return made
