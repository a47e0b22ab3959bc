"""The ``partner-match`` command line: import, stats, index, search, evaluate, serve."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from matcher import importers
from matcher.db import Database
from matcher.newcomer import NewcomerRule
from matcher.registry import stats as registry_stats
from service.config import Settings


class Context:
    def __init__(self) -> None:
        self.settings = Settings.from_env()
        self._db: Database | None = None

    @property
    def db(self) -> Database:
        if self._db is None:
            try:
                self._db = Database(self.settings.database_url)
            except Exception as exc:  # unreachable server, bad URL: say which
                raise click.ClickException(f"cannot open database {self.settings.database_url}: {exc}") from exc
        return self._db


pass_ctx = click.make_pass_decorator(Context, ensure=True)


@click.group()
def main() -> None:
    """partner-match: find complementary partners for Erasmus+ cooperation partnerships."""


@main.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(importers.FORMATS), help="Detected when omitted.")
@click.option("--json", "as_json", is_flag=True, help="Print the summaries as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@pass_ctx
def import_cmd(ctx: Context, paths: tuple[Path, ...], fmt: str | None, as_json: bool, quiet: bool) -> None:
    """Import Erasmus+ exports, CORDIS data, ECHE holder lists or registry CSVs.

    Each path is imported in its own transaction: a file that cannot be read changes nothing.
    """
    summaries = []
    failed = False
    for path in paths:
        try:
            with ctx.db.session() as session:
                summary = importers.import_path(session, path, fmt, progress=not quiet)
        except importers.ImportFailed as exc:
            click.echo(f"error: {exc} (nothing was imported from {path})", err=True)
            failed = True
            continue
        summaries.append(summary)
        if not as_json:
            click.echo("\n".join(summary.lines()))
    if as_json:
        click.echo(json.dumps([s.as_dict() for s in summaries], indent=2, default=str))
    if failed:
        sys.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@pass_ctx
def stats(ctx: Context, as_json: bool) -> None:
    """Counts of organisations, projects, participations and newcomers."""
    with ctx.db.session() as session:
        data = registry_stats(session, NewcomerRule(ctx.settings.newcomer_max_projects))
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"organisations:  {data['organisations']}")
    click.echo(f"projects:       {data['projects']}")
    click.echo(f"participations: {data['participations']}")
    click.echo(f"newcomers:      {data['newcomers']} (at most {data['newcomer_max_projects']} past projects)")
    for title, key, limit in (("by source", "by_source", 20), ("by sector", "by_sector", 20),
                              ("by country (top 15)", "by_country", 15)):
        click.echo(f"{title}:")
        for name, n in list(data[key].items())[:limit]:
            click.echo(f"  {name:<20} {n}")
