"""``largebatch dashboard [PATH ...] [--out DIR] [--serve] [--config FILE ...] [--wandb ENTITY/PROJECT]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_dashboard_command(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dashboard",
        help="scaling and sensitivity dashboards (static HTML, or a W&B workspace)",
        description="Build the dashboards defined in dashboards/*.yaml over runs, sweeps or run directories: "
        "one HTML page per view plus an index, each view's data as CSV and figures as PNG, all under "
        "--out and viewable offline. With --wandb, write the same views as a W&B workspace spec instead.",
    )
    parser.add_argument(
        "paths", nargs="*", metavar="SWEEP|RUNS", help="sweep folders, runs roots or run directories (default ./runs)"
    )
    parser.add_argument("--out", default="dashboard_out", metavar="DIR", help="output folder (default ./dashboard_out)")
    parser.add_argument(
        "--config",
        action="append",
        metavar="FILE",
        help="dashboard YAML; repeatable (default dashboards/scaling.yaml and dashboards/sensitivity.yaml)",
    )
    parser.add_argument("--serve", action="store_true", help="then serve the folder on 127.0.0.1 until Ctrl-C")
    parser.add_argument("--port", type=int, default=8000, help="port for --serve (default 8000; 0 picks a free one)")
    parser.add_argument("--no-png", action="store_true", help="skip the PNG export")
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", help="write W&B workspace specs to DIR/wandb/ (offline)")
    parser.add_argument(
        "--publish",
        action="store_true",
        help="with --wandb: also save the workspaces to W&B (needs an API key and the network)",
    )
    parser.set_defaults(run=run_dashboard)


def _wandb(args: argparse.Namespace, configs: list[Path]) -> None:
    from largebatch.analysis import load_results
    from largebatch.dashboard.config import dashboard_name, load_dashboard
    from largebatch.dashboard.workspace import build_workspace, workspace_spec
    from largebatch.records.reader import report_damage

    entity, sep, project = args.wandb.partition("/")
    if not (sep and entity and project and "/" not in project):
        raise ValueError(f"--wandb {args.wandb!r}: expected ENTITY/PROJECT")
    results = load_results(args.paths) if args.paths else None
    report_damage(results.damage if results else ())
    run_ids = list(results.runs["run_id"]) if results else []
    folder = Path(args.out) / "wandb"
    folder.mkdir(parents=True, exist_ok=True)
    for path in configs:
        workspace, notes = build_workspace(load_dashboard(path), entity, project, run_ids)
        target = folder / f"{dashboard_name(path)}.workspace.json"
        target.write_text(json.dumps(workspace_spec(workspace), indent=1) + "\n", encoding="utf-8")
        print(f"workspace '{workspace.name}': {target}" + "".join(f"\n  note: {n}" for n in notes))
        if args.publish:
            workspace.save()
            print(f"  published: {workspace.url}")
    if not args.publish:
        print(
            f"to publish: upload the runs (`wandb sync RUN_DIR/wandb/offline-run-*`), then rerun with --publish "
            f"(needs WANDB_API_KEY and the network); the workspaces then appear in {entity}/{project}"
        )


def run_dashboard(args: argparse.Namespace) -> int:
    from largebatch.core.errors import ConfigError
    from largebatch.dashboard.build import build, default_configs
    from largebatch.dashboard.serve import serve
    from largebatch.records.reader import report_damage

    try:
        configs = [Path(c) for c in args.config] if args.config else default_configs()
        if args.wandb:
            _wandb(args, configs)
            return 0
        built = build(args.paths or ["runs"], configs, args.out, images=not args.no_png)
    except (ConfigError, FileNotFoundError, ValueError) as err:
        print(f"largebatch dashboard: {err}", file=sys.stderr)
        return 2
    report_damage(built.damage)
    for page in built.pages:
        print(f"{page.stem}: {page.page.title}")
    print(built.image_note)
    print(f"dashboard: {built.index.resolve().as_uri()}")
    if built.pages:
        print(f"headline ({built.pages[0].stem}): {built.pages[0].page.title}")
    if args.serve:
        serve(built.out, args.port)
    return 0
