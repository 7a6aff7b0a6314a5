"""largebatch dashboard: dashboard files, pages built from real training runs, the CLI (static site, --serve,
--wandb), and the pages rendered in headless Chromium from file:// with no network and no JavaScript errors."""

from __future__ import annotations

import html as html_module
import json
import math
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pytest
import yaml
from largebatch.analysis import good_lr_band, load_results, lr_batch_grid, runs_study
from largebatch.cli import build_parser, main
from largebatch.core.errors import ConfigError
from largebatch.dashboard import figures, pages
from largebatch.dashboard.build import Built, build, default_configs
from largebatch.dashboard.config import HEADINGS, VIEWS, load_dashboard, validate_dashboard
from largebatch.dashboard.kinds import KINDS, ViewKind, register
from largebatch.dashboard.style import log_axis
from largebatch.dashboard.views import BaseView
from largebatch.dashboard.workspace import build_workspace, wandb_key, workspace_spec

ROOT = Path(__file__).parents[1]
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.yaml"))
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# (optimizer, batch size, lr): two optimizers × two batch sizes, two rates in one cell, one run that diverges
TRIALS = [
    ("lars", 32, 5.0),
    ("lars", 128, 5.0),
    ("lars", 128, 1.0),
    ("sgd", 32, 0.1),
    ("sgd", 128, 0.3),
    ("sgd", 128, 0.1),
    ("sgd", 128, 1.0e6),
]
TARGET = 0.2  # a val/acc these 4-epoch runs reach at both batch sizes (chance is 0.1)


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Runs made by the real ``largebatch train`` command (in-process: one import of torch for all)."""
    root = tmp_path_factory.mktemp("runs")
    for optimizer, batch, lr in TRIALS:
        code = main(
            [
                "train",
                str(ROOT / "experiments" / "mnist1d_cnn.yaml"),
                "--runs-root",
                str(root),
                "--set",
                "data.options.num_samples=2000",
                "model.options.channels=16",
                f"batch_size={batch}",
                f"optimizer.name={optimizer}",
                f"optimizer.lr={lr}",
                "optimizer.options={}",
                "budget={epochs: 4}",
                "tracking.wandb.mode=disabled",
                "logging.every_n_steps=2",
                "logging.telemetry_every_n_steps=2",
                "probes.noise_scale.enabled=true",
                "probes.sharpness={enabled: true, batch_size: 128, tol: 1.0e-2}",
            ]
        )
        assert code == 0
    return root


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The shipped dashboards, the steps target lowered to what these short runs reach."""
    folder = tmp_path_factory.mktemp("dashboards")
    paths = []
    for source in DASHBOARDS:
        data = yaml.safe_load(source.read_text())
        for view in data["views"]:
            if view["view"] in ("steps_to_target", "scaling_regimes"):
                view["target"] = TARGET
        paths.append(folder / source.name)
        paths[-1].write_text(yaml.safe_dump(data, sort_keys=False))
    return paths


@pytest.fixture(scope="module")
def site(runs_root: Path, configs: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build([runs_root], configs, tmp_path_factory.mktemp("site"), images=False)


def test_shipped_dashboards_are_valid_and_cover_every_view() -> None:
    assert {p.name for p in DASHBOARDS} >= {"scaling.yaml", "sensitivity.yaml"}
    every_file = sorted((ROOT / "dashboards").rglob("*.yaml"))  # schedules/ too: views of runs whose batch changes
    kinds = {view.kind for path in every_file for view in load_dashboard(path).views}
    assert kinds == set(VIEWS)


@pytest.mark.parametrize(
    ("views", "message"),
    [
        (
            [{"view": "heatmap"}],
            "t.yaml: key 'views[0].view': unknown view 'heatmap'; allowed views: generalization_gap, ",
        ),
        (
            [{"view": "lr_heatmap", "metrc": "x"}],
            "t.yaml: unknown key 'views[0].metrc'; allowed keys here: bins_per_decade, ",
        ),
        ([{"view": "steps_to_target"}], "t.yaml: missing required key 'views[0].target'"),
        ([{"metric": "x"}], "t.yaml: missing required key 'views[0].view'; allowed views: "),
        (
            [{"view": "importance", "evaluators": ["shap"]}],
            "t.yaml: key 'views[0].evaluators[0]': Input should be 'ped-anova' or 'fanova'",
        ),
        (
            [{"view": "curves", "metrics": ["a"]}, {"view": "curves", "metrics": ["b"]}],
            "t.yaml: two views share the page name curves",
        ),
    ],
)
def test_dashboard_file_errors_name_file_key_and_allowed_values(views: list, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate_dashboard({"title": "x", "views": views}, "t.yaml")
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("title: x\ncolour: red\nviews: [{view: lr_scaling}]\n")
    with pytest.raises(
        ConfigError,
        match=r"d.yaml: unknown key 'colour'; allowed keys here: description, filters, "
        r"series_by, title, views",
    ):
        load_dashboard(path)


def test_every_page_has_figures_data_and_a_result_title(site: Built) -> None:
    assert len(site.pages) == sum(len(load_dashboard(p).views) for p in DASHBOARDS)
    for built in site.pages:
        assert built.page.figures, f"{built.stem}: {built.page.notes}"
        assert built.page.title and all(not t.empty for t in built.page.tables.values()), built.stem
        assert (site.out / f"{built.stem}.html").is_file()
        assert (site.out / "data" / f"{built.stem}.csv").stat().st_size > 0
    titles = {b.stem: b.page.title for b in site.pages}
    assert "lars" in titles["scaling-steps_to_target"] and f"{TARGET}" in titles["scaling-steps_to_target"]
    assert "1 of" in titles["sensitivity-lr_heatmap"] and "diverged" in titles["sensitivity-lr_heatmap"]
    assert "PED-ANOVA" in titles["sensitivity-importance"] and "fANOVA" in titles["sensitivity-importance"]


def test_pages_are_self_contained(site: Built) -> None:
    assert (site.out / "plotly.min.js").stat().st_size > 1_000_000
    for html in site.out.glob("*.html"):
        text = html.read_text()
        assert "cdn." not in text and "https://" not in text.replace("https://www.w3.org", ""), html.name
        assert '<script src="plotly.min.js"></script>' in text


def cli_command(runs_root: Path, out: Path, *extra: str) -> list[str]:
    """``largebatch dashboard RUNS --out OUT EXTRA...`` as a subprocess command line."""
    return [sys.executable, "-m", "largebatch", "dashboard", str(runs_root), "--out", str(out), *extra]


def test_cli_builds_the_dashboard_from_training_runs(runs_root: Path, configs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    configs_args = [a for c in configs for a in ("--config", str(c))]
    done = subprocess.run(cli_command(runs_root, out, *configs_args), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"dashboard: {(out / 'index.html').resolve().as_uri()}" in done.stdout
    first = load_dashboard(configs[0]).views[0]
    assert done.stdout.splitlines()[-1].startswith(f"headline ({configs[0].stem}-{first.page}): ")
    pages = sorted(p.stem for p in out.glob("*-*.html"))
    assert pages == sorted(f"{c.stem}-{v.page}" for c in configs for v in load_dashboard(c).views)
    assert all((out / "data" / f"{p}.csv").is_file() for p in pages)
    if CHROMIUM.exists():
        assert "figures exported as PNG" in done.stdout, done.stdout
        assert len(list((out / "png").glob("*.png"))) >= len(pages)
    else:
        assert "PNG export skipped" in done.stdout


def test_cli_missing_runs_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == f"largebatch dashboard: runs root {tmp_path / 'missing'} does not exist\n"


def test_cli_reports_a_view_that_does_not_fit_the_runs(
    tmp_path: Path, runs_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: x\nviews: [{view: lr_heatmap, metric: eval.no_such_metric}]\n")
    assert main(["dashboard", str(runs_root), "--config", str(bad), "--out", str(tmp_path / "o"), "--no-png"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"largebatch dashboard: {bad}: views[0] (lr_heatmap): no column 'eval.no_such_metric'")


def test_serve_prints_a_url_serves_the_site_and_stops_on_ctrl_c(
    runs_root: Path, configs: list[Path], tmp_path: Path
) -> None:
    process = subprocess.Popen(
        cli_command(runs_root, tmp_path / "out", "--no-png", "--serve", "--port", "0", "--config", str(configs[0])),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # as in a script's background job
    )
    try:
        line = ""
        while "serving" not in line:
            line = process.stdout.readline()  # type: ignore[union-attr]
            assert line, process.stderr.read()  # type: ignore[union-attr]
        url = line.split(" at ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/index.html")
        assert not url.startswith("http://127.0.0.1:8000/")  # --port 0: a free port chosen by the system
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200 and b"largebatch dashboards" in response.read()
        with urllib.request.urlopen(url.replace("index.html", "plotly.min.js"), timeout=10) as response:
            assert response.status == 200
    finally:
        process.send_signal(signal.SIGINT)
        # communicate, not wait: it drains the pipes, so a chatty server cannot block on a full pipe while exiting
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err


def test_workspace_spec_offline() -> None:
    config = load_dashboard(ROOT / "dashboards" / "scaling.yaml")
    workspace, notes = build_workspace(config, "lab", "largebatch", run_ids=["r1", "r2"])
    spec = workspace_spec(workspace)
    assert (spec["entity"], spec["project"], spec["displayName"]) == ("lab", "largebatch", config.title)
    sections = spec["spec"]["section"]["panelBankConfig"]["sections"]
    assert [s["name"] for s in sections] == [HEADINGS[v.kind] for v in config.views]
    panels = {p["viewType"]: p["config"] for s in sections for p in s["panels"]}
    assert {"Run History Line Plot", "Scatter Plot", "Parallel Coordinates Plot"} <= set(panels)
    gap = next(
        p["config"]
        for s in sections
        for p in s["panels"]
        if "gen_gap vs batch size" in p["config"].get("chartTitle", "")
    )
    assert (gap["xAxis"], gap["yAxis"], gap["xAxisLogScale"]) == (
        "config:batch_size.value",
        "summary:eval/gen_gap",
        True,
    )
    runset = spec["spec"]["section"]["runSets"][0]
    assert runset["filters"]["filters"][-1]["value"] == ["r1", "r2"]
    assert runset["grouping"] == [{"section": "config", "name": "optimizer.value.name"}]
    assert notes == ["series column 'sweep' not carried over (no W&B counterpart)"]
    sensitivity = workspace_spec(
        build_workspace(load_dashboard(ROOT / "dashboards" / "sensitivity.yaml"), "lab", "p")[0]
    )
    importance = [
        p
        for s in sensitivity["spec"]["section"]["panelBankConfig"]["sections"]
        for p in s["panels"]
        if p["viewType"] == "Parameter Importance"
    ]
    assert [p["config"]["targetKey"] for p in importance] == ["val/acc"]


def test_wandb_keys() -> None:
    assert wandb_key("eval.val_acc").name == "eval/val_acc" and wandb_key("final.val/acc").name == "val/acc"
    assert type(wandb_key("lr")).__name__ == "Config" and wandb_key("lr").name == "plan.lr"
    assert wandb_key("sweep") is None


def test_cli_wandb_writes_workspace_specs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard", "--wandb", "lab/largebatch", "--out", str(tmp_path)]) == 0
    written = sorted(p.name for p in (tmp_path / "wandb").iterdir())
    assert written == ["scaling.workspace.json", "sensitivity.workspace.json"]
    assert json.loads((tmp_path / "wandb" / "scaling.workspace.json").read_text())["project"] == "largebatch"
    assert "--publish" in capsys.readouterr().out
    assert main(["dashboard", "--wandb", "no-project", "--out", str(tmp_path)]) == 2


def test_dashboard_is_a_subcommand() -> None:
    help_text = build_parser().format_help()
    assert "dashboard" in help_text


PLOTS_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => [
    d.id, d._fullData.length, d.querySelectorAll('g.trace, g.hm, g.table').length,
    d.querySelectorAll('.main-svg').length])"""


def open_page(browser: Any, html: Path) -> tuple[list[list[Any]], list[str], list[str]]:
    """Load ``html`` from file:// and screenshot it: (plots as [id, traces, drawn traces, svgs], every request
    URL, every JavaScript error)."""
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(html.as_uri(), wait_until="load")
    plots = page.evaluate(PLOTS_JS)
    page.screenshot(path=str(ARTIFACTS / f"{html.stem}.png"), full_page=True)
    page.close()
    return plots, requests, errors


def test_pages_render_offline_in_headless_chromium(site: Built) -> None:
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium: run scripts/install_browser.sh (Debian's chromium package)")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    expected = {f"{b.stem}-{i}": len(f.data) for b in site.pages for i, f in enumerate(b.page.figures, start=1)}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            for html in sorted(site.out.glob("*.html")):
                plots, requests, errors = open_page(browser, html)
                assert not errors, f"{html.name}: {errors}"
                assert all(url.startswith("file://") for url in requests), f"{html.name}: {requests}"
                own = {k for k in expected if k.startswith(html.stem + "-")} if html.stem != "index" else {"headline"}
                assert {p[0] for p in plots} == own, html.name
                expected["headline"] = expected[f"{site.pages[0].stem}-1"]
                for plot_id, traces, drawn, svgs in plots:
                    assert traces == drawn == expected[plot_id] and svgs >= 1, (plot_id, traces, drawn, svgs)
        finally:
            browser.close()
    assert {p.stem for p in ARTIFACTS.glob("*.png")} >= {b.stem for b in site.pages} | {"index"}


def test_index_opens_with_the_headline_answer(site: Built) -> None:
    """The first view of the first dashboard heads the index; by default that is the band-survival answer."""
    first = site.pages[0]
    index = (site.out / "index.html").read_text()
    assert 'id="headline"' in index and index.index('class="headline"') < index.index("<h2>")
    assert html_module.escape(first.page.title) in index
    default = load_dashboard(default_configs()[0]).views[0]
    assert default.kind == "band_survival"
    survival = next(b for b in site.pages if b.stem == "sensitivity-band_survival").page
    assert survival.figures and "(good: eval.val_acc >= " in survival.title and "lars" in survival.title


def test_lightning_metrics_and_telemetry_share_optimizer_steps(runs_root: Path) -> None:
    """train/loss (Lightning) and grad_norm/global (telemetry) are both logged every 2 steps: a join on ``step``
    matches every logged training step, and validation sits at the step count of its epoch's end."""
    history = load_results([runs_root]).history
    loss = history[history["metric"] == "train/loss"]
    grad = history[history["metric"] == "grad_norm/global"]
    joined = loss.merge(grad, on=["run_id", "step"], suffixes=("_loss", "_grad"))
    assert len(joined) == len(loss) > 0 and (joined["step"] % 2 == 0).all()
    assert loss["epoch"].notna().all()
    runs = load_results([runs_root]).runs.set_index("run_id")
    completed = runs.index[runs["status"] == "completed"]  # a diverged run validates where the guard stopped it
    val = history[(history["metric"] == "val/acc") & history["run_id"].isin(completed)]
    per_epoch = runs.loc[val["run_id"], "plan.steps_per_epoch"].to_numpy()
    assert (val["step"].to_numpy() == (val["epoch"].to_numpy() + 1) * per_epoch).all()
    gap = history[(history["metric"] == "gap/val_acc") & history["run_id"].isin(completed)]
    assert set(zip(gap["run_id"], gap["step"])) == set(zip(val["run_id"], val["step"]))


def test_band_chart_orders_batch_sizes_numerically() -> None:
    table = good_lr_band(analysis_runs([("a", 128, 0.1, 0.9), ("a", 512, 0.1, 0.8), ("b", 32, 0.1, 0.9),
                                        ("b", 128, 0.1, 0.9), ("b", 512, 0.1, 0.7)]), by=("optimizer.name",))
    table = table[~((table["series"] == "a") & (table["batch_size"] == 32))]
    figure = figures.band_figure(table, {"a": "red", "b": "blue"}, 0.02, "eval.val_acc", "lr", "t")
    assert list(figure.layout.xaxis2.categoryarray) == ["32", "128", "512"]
    assert figure.layout.xaxis2.categoryorder == "array"


@pytest.mark.parametrize("values", [[51200, 51200], [51200, 52000], [0.03], [40000, 60000], [1, 1000]])
def test_log_axes_always_show_at_least_two_ticks_inside_their_range(values: list[float]) -> None:
    axis = log_axis(values)
    ticks = axis["tickvals"]
    assert len(set(ticks)) >= 2
    if "range" in axis:
        low, high = (10**v for v in axis["range"])
        assert low <= min(values) and max(values) <= high and all(low <= t <= high for t in ticks)


def test_examples_to_target_axis_has_several_ticks_when_e_is_flat() -> None:
    """One batch size reached the target: E(B) and its perfect-scaling line are one value."""
    table = pd.DataFrame({"series": ["a", "a"], "batch_size": [32, 128], "steps": [1600.0, math.nan],
                          "samples": [51200.0, math.nan], "reached": [True, False], "run_id": ["r0", None],
                          "lr": [0.1, math.nan], "n_trials": [1, 1], "n_reached": [1, 0],
                          "perfect_steps": [1600.0, 400.0], "perfect_samples": [51200.0, 51200.0]})
    figure = figures.steps_figure(table, {"a": "red"}, "val/acc", 0.5, "t")
    assert len(set(figure.layout.yaxis2.tickvals)) >= 2


def test_heatmap_headline_reports_the_best_runs_lr_not_its_bin_label() -> None:
    """0.1 and 0.12 share a quarter-decade bin (label: the geometric mean of the series' rates in it, 0.106); the
    best run used 0.12."""
    runs = analysis_runs([("sgd", 64, 0.1, 0.80), ("sgd", 64, 0.12, 0.85), ("sgd", 128, 0.1, 0.7)])
    grid = lr_batch_grid(runs, by=("optimizer.name",))
    best = grid[grid["batch_size"] == 64].iloc[0]
    assert best["lr"] == pytest.approx((0.1 * 0.12 * 0.1) ** (1 / 3)) and best["best_lr"] == 0.12
    assert best["best_run"] == "r01"
    view = load_dashboard(ROOT / "dashboards" / "sensitivity.yaml").views[1]
    context = pages.Context(None, runs, ("optimizer.name",), {"sgd": "red"})  # type: ignore[arg-type]
    page = pages.heatmap_page(view, context)
    assert "(sgd, B=64, lr=0.12)" in page.title


def test_importance_counts_diverged_trials_as_its_note_says(site: Built, runs_root: Path) -> None:
    runs = analysis_runs([("sgd", 64, 0.1, 0.9), ("sgd", 64, 10.0, 0.1), ("sgd", 64, 0.01, math.nan)])
    runs = runs.assign(diverged=[False, True, True])
    study = runs_study(runs, ["lr"], "final.val/acc")
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "COMPLETE", "FAIL"]  # the diverged run with a finite accuracy is scored
    page = next(b.page for b in site.pages if b.stem == "sensitivity-importance")
    note = next(n for n in page.notes if n.startswith("Diverged trials are included"))
    diverged = load_results([runs_root]).runs["diverged"].sum()
    assert diverged >= 1 and f"{len(TRIALS)} of {len(TRIALS)} trials are scored" in note


def analysis_runs(rows: list[tuple[str, int, float, float]]) -> pd.DataFrame:
    """A runs table from (optimizer, batch, lr, val_acc) rows."""
    frame = pd.DataFrame(rows, columns=["optimizer.name", "batch_size", "lr", "eval.val_acc"])
    return frame.assign(run_id=[f"r{i:02d}" for i in range(len(frame))], sweep="", sweep_dir="",
                        diverged=frame["eval.val_acc"].isna(), **{"final.val/acc": frame["eval.val_acc"]})


def test_every_registered_view_kind_is_complete_and_validated() -> None:
    assert list(VIEWS) == list(KINDS) and set(HEADINGS) == set(KINDS)
    for name, kind in KINDS.items():
        assert kind.name == name and callable(kind.page) and callable(kind.panels) and kind.heading
    assert validate_dashboard({"title": "x", "views": [{"view": "band_survival"}]}, "t.yaml").views[0].heading == (
        KINDS["band_survival"].heading
    )


class _Half(BaseView):
    view: Literal["half"]


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        (ViewKind(_Half, "Half a view", pages.gap_page, None),  # type: ignore[arg-type]
         "view kind 'half' is incomplete: no panels"),
        (ViewKind(_Half, " ", None, None),  # type: ignore[arg-type]
         "view kind 'half' is incomplete: no heading, page, panels"),
        (ViewKind(dict, "x", pages.gap_page, len), "is not a BaseView subclass"),  # type: ignore[arg-type]
        (ViewKind(BaseView, "x", pages.gap_page, len), "needs a field `view: Literal['<name>']`"),
    ],
)
def test_a_registered_but_incomplete_view_kind_fails_loudly(kind: ViewKind, message: str) -> None:
    with pytest.raises(TypeError, match=re.escape(message)):
        register(kind)


def test_a_view_kind_registered_twice_fails() -> None:
    with pytest.raises(TypeError, match="view kind 'generalization_gap' is registered twice"):
        register(KINDS["generalization_gap"], KINDS["generalization_gap"])


def test_make_demo_installs_the_browser_and_survives_without_it() -> None:
    """`make demo` runs the `browser` target (PNG export needs Chromium), whose failure is only a warning."""
    plan = subprocess.run(["make", "-n", "demo"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert plan.returncode == 0, plan.stderr
    lines = plan.stdout.splitlines()
    browser = next(i for i, line in enumerate(lines) if "scripts/install_browser.sh" in line)
    sweep = next(i for i, line in enumerate(lines) if "sweep sweeps/quickstart.yaml" in line)
    assert browser < sweep and '|| echo "warning:' in lines[browser] and "PNG export" in lines[browser]


def test_sweep_reports_carry_the_time_axes_not_the_modules_step_and_epoch() -> None:
    """The module logs ``step`` and ``epoch`` only to place its metrics; Ray gets ``steps``/``epochs``/``samples``."""
    from types import SimpleNamespace

    import torch
    from largebatch.sweep.training import epoch_metrics

    trainer = SimpleNamespace(callbacks=[], global_step=20, callback_metrics={
        "step": torch.tensor(20.0), "epoch": torch.tensor(1.0), "val/acc": torch.tensor(0.5)},
        datamodule=SimpleNamespace(samples_through=lambda step: 64 * step))
    module = SimpleNamespace(plan=SimpleNamespace(as_dict=lambda: {"steps_per_epoch": 10, "batch_size": 64}))
    metrics = epoch_metrics(trainer, module)  # type: ignore[arg-type]
    assert metrics == {"val/acc": 0.5, "steps": 20, "epochs": 2.0, "samples": 1280, "status": "running"}
