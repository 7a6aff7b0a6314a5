"""``largebatch reproduce TABLE [--profile smoke|cpu|gpu|online] [--address ADDR] [--runs-root DIR]`` and
``largebatch reproduce --list``."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

DESCRIPTION = """\
Reproduce a published table: run (or resume) the table's sweep for the chosen profile, then print a Markdown
table of our numbers, the published numbers (with their sources; UNVERIFIED where not checked against the
paper) and each claim with a verdict from a named statistical test at the table's confidence level (Welch t,
TOST equivalence, one-sample t over seeds): holds, does not hold, or inconclusive with the reason (a reference
that did not learn, too few seeds, divergence the claim excludes, an interval that straddles the tolerance).
Smoke-profile verdicts print as "smoke: not evidence". Also builds the table's dashboard next to the results.

Tables are sweeps/reproduce/<table>/table.yaml (a spec: series, claims, rules, one sweep file per profile, a
dashboard); `largebatch reproduce --list` shows them with their sources and expected runtimes. Profiles: smoke
(seconds, for tests; never evidence), cpu (2 CPU cores), gpu (one GPU, offline: generated or shipped data),
online (where a table has one: downloads its dataset, e.g. CIFAR-10).
Interrupted? Run the same command again: finished trials are kept, unfinished ones resume."""


def add_reproduce_command(subparsers: Any) -> None:
    parser = subparsers.add_parser("reproduce", help="reproduce a paper's table: our numbers, published, verdicts",
                                   description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", nargs="?", metavar="TABLE", help="the table's name (see --list)")
    parser.add_argument("--list", action="store_true", help="list the tables, sources and expected runtimes")
    parser.add_argument("--profile", default="cpu", choices=("smoke", "cpu", "gpu", "online"),
                        help="which sweep (default cpu; gpu runs offline; online downloads its dataset)")
    parser.add_argument("--address", help="Ray cluster to use (default: RAY_ADDRESS, else a local cluster)")
    parser.add_argument("--runs-root", metavar="DIR",
                        help="where sweep folders live (default: the experiment's tracking.runs_root, ./runs)")
    parser.add_argument("--specs", metavar="DIR", help="table specs folder (default ./sweeps/reproduce)")
    parser.add_argument("--no-png", action="store_true", help="skip the dashboard's PNG export")
    parser.set_defaults(run=run_reproduce_command)


def _list(args: argparse.Namespace) -> int:
    from largebatch.reproduce.published import load_published
    from largebatch.reproduce.report import markdown_table
    from largebatch.reproduce.spec import find_tables, load_table, spec_dir

    import pandas as pd

    published = load_published()
    rows = []
    for name, path in find_tables(spec_dir(args.specs)).items():
        table = load_table(path)
        spec = table.spec
        sources = sorted({f"arXiv:{published.sources[v.source].arxiv}" for v in published.values(name)})
        runtimes = "; ".join(f"{p}: ~{table.profile(p).minutes:g} min ({table.profile(p).machine})"
                             for p in table.profile_names())
        rows.append({"table": name, "reproduces": spec.reproduces, "sources": ", ".join(sources),
                     "expected runtime": runtimes})
    print(markdown_table(pd.DataFrame(rows, columns=["table", "reproduces", "sources", "expected runtime"])))
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from largebatch.reproduce.run import reproduce
    from largebatch.reproduce.spec import load_table, spec_dir, table_path

    table = load_table(table_path(spec_dir(args.specs), args.table))
    started = time.monotonic()
    reproduction, unfinished = reproduce(table, args.profile, runs_root=args.runs_root, address=args.address,
                                         images=not args.no_png, echo=lambda line: print(line, file=sys.stderr))
    print(reproduction.markdown())
    print(f"wall time: {time.monotonic() - started:.0f} s", file=sys.stderr)
    if unfinished:
        print("interrupted: the numbers cover finished trials only; run the same command again to resume",
              file=sys.stderr)
        return 130
    return 0


def run_reproduce_command(args: argparse.Namespace) -> int:
    from largebatch.core.errors import ConfigError

    if not args.list and not args.table:
        print("largebatch reproduce: give a TABLE, or --list", file=sys.stderr)
        return 2
    try:
        return _list(args) if args.list else _reproduce(args)
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"largebatch reproduce: {err}", file=sys.stderr)
        return 2
