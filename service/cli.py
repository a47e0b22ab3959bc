"""The ``partner-match`` command line: import, stats, index, search, evaluate, serve."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import click

from matcher import importers, vocab
from matcher.app import AccountError, IndexUnavailable, OrganisationFilter, OrganisationQuery, PartnerMatch
from matcher.db import redacted
from service.config import Settings
from service.state import build


class Context:
    """The front door for the CLI's settings, opened on first use; the schema must be current."""

    def __init__(self) -> None:
        self.settings = Settings.from_env()
        self._pm: PartnerMatch | None = None

    def open(self, check_schema: bool = True) -> PartnerMatch:
        if self._pm is None:
            try:
                self._pm = build(self.settings)
                problem = self._pm.db.schema_problem() if check_schema else None
            except ValueError as exc:
                raise click.ClickException(str(exc)) from exc
            except Exception as exc:  # unreachable server, bad URL: say which, without the password
                raise click.ClickException(
                    f"cannot open database {redacted(self.settings.database_url)}: {exc.__class__.__name__}"
                ) from exc
            if problem:
                self._pm = None
                raise click.ClickException(problem)
        return self._pm

    @property
    def pm(self) -> PartnerMatch:
        return self.open()


pass_ctx = click.make_pass_decorator(Context, ensure=True)


@click.group()
def main() -> None:
    """partner-match: find complementary partners for Erasmus+ cooperation partnerships."""


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@pass_ctx
def db_upgrade(ctx: Context) -> None:
    """Create the schema, or migrate it to this version (Alembic); nothing else changes it."""
    pm = ctx.open(check_schema=False)
    pm.db.upgrade()
    click.echo(f"database {pm.db.safe_url} is at the current schema")


@db.command("status")
@pass_ctx
def db_status(ctx: Context) -> None:
    """Whether the schema is current; exits 1 when it is behind."""
    problem = ctx.open(check_schema=False).db.schema_problem()
    if problem:
        raise click.ClickException(problem)
    click.echo("the database schema is current")


@main.group()
def user() -> None:
    """Accounts: create admins (a national agency's staff) and confirmed users."""


@user.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="An admin of the registry: moderates claims, duplicates, reports.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input instead of a prompt.")
@pass_ctx
def user_create(ctx: Context, email: str, admin: bool, password_stdin: bool) -> None:
    """Create a confirmed account (the operator vouches for its e-mail address)."""
    password = (
        sys.stdin.readline().rstrip("\n")
        if password_stdin
        else click.prompt("Password", hide_input=True, confirmation_prompt=True)
    )
    try:
        actor = ctx.pm.accounts.sign_up(email, password, consent=True, admin=admin, verified=True)
    except AccountError as exc:
        raise click.ClickException(f"{exc.field}: {exc.message}") from exc
    click.echo(f"account {actor.id} ({actor.email}) created" + (", admin" if admin else ""))


@main.command("import")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(importers.FORMATS), help="Detected when omitted.")
@click.option("--demo", is_flag=True, help="Import the fictitious demo data shipped with partner-match.")
@click.option("--json", "as_json", is_flag=True, help="Print the summaries as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@pass_ctx
def import_cmd(ctx: Context, paths: tuple[Path, ...], fmt: str | None, demo: bool, as_json: bool, quiet: bool) -> None:
    """Import Erasmus+ exports, CORDIS data, ECHE holder lists or registry CSVs.

    Each path is imported in its own transaction: a file that cannot be read changes nothing.
    """
    import seed_data

    paths = (*paths, *(seed_data.demo_files() if demo else []))
    if not paths:
        raise click.UsageError("give at least one PATH, or --demo")
    summaries = []
    failed = False
    for path in paths:
        try:
            summary = ctx.pm.import_path(path, fmt, progress=not quiet)
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
    data = ctx.pm.stats()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"organisations:  {data['organisations']}")
    click.echo(f"projects:       {data['projects']}")
    click.echo(f"participations: {data['participations']}")
    click.echo(f"newcomers:      {data['newcomers']} ({data['newcomer_rule']})")
    for title, key, limit in (
        ("by source", "by_source", 20),
        ("by sector", "by_sector", 20),
        ("by country (top 15)", "by_country", 15),
    ):
        click.echo(f"{title}:")
        for name, n in list(data[key].items())[:limit]:
            click.echo(f"  {name:<20} {n}")


@main.group()
def index() -> None:
    """Build, inspect and roll back the vector index."""


@index.command("build")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@pass_ctx
def index_build(ctx: Context, as_json: bool, quiet: bool) -> None:
    """Embed organisations whose profile changed (and projects whose text did) and switch to a new index version."""
    summary = ctx.pm.build_index(progress=not quiet)
    if as_json:
        click.echo(json.dumps(summary.as_dict()))
        return
    click.echo(
        f"embedded {summary.embedded}, reused {summary.reused}, total {summary.total} "
        f"(and {summary.projects_embedded} project texts) "
        f"in {summary.seconds:.1f} s ({summary.model_id}, text {summary.text_version})"
    )
    click.echo(f"serving version {summary.version}" + ("" if summary.swapped else " (unchanged)"))


@index.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@pass_ctx
def index_status_cmd(ctx: Context, as_json: bool) -> None:
    """Versions on disk, the one serving, and whether it is stale against the database."""
    status = ctx.pm.index_status()
    if as_json:
        click.echo(json.dumps(status, indent=2))
        return
    click.echo(f"model {status['model_id']}; {status['organisations']} organisations in the database")
    if status["current"] is None:
        click.echo("no index built yet (run: partner-match index build)")
    for v in status["versions"]:
        mark = "*" if v["current"] else " "
        if v["ok"]:
            click.echo(
                f"{mark} {v['version']}  {v['count']} vectors  built {v['built_at']}"
                f"  {'STALE' if v['stale'] else 'up to date'}"
            )
        else:
            click.echo(f"{mark} {v['version']}  REFUSED: {v['error']}")


@index.command("rollback")
@pass_ctx
def index_rollback(ctx: Context) -> None:
    """Serve the version before the current one again."""
    try:
        previous = ctx.pm.rollback_index()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"serving version {previous}")


@main.group()
def ranker() -> None:
    """Fit the ranker the service uses on the registry's own consortia, or go back to the default."""


@ranker.command("fit")
@click.option(
    "--years",
    type=click.IntRange(1, 20),
    default=3,
    show_default=True,
    help="Learn from consortia of the latest N years.",
)
@click.option(
    "--max-consortia",
    type=click.IntRange(50),
    default=8000,
    show_default=True,
    help="Sample at most this many (consortium, hidden member) examples.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@pass_ctx
def ranker_fit(ctx: Context, years: int, max_consortia: int, as_json: bool, quiet: bool) -> None:
    """Fit LambdaMART on past consortia; the service uses it only if it beats the default on the latest ones."""
    try:
        fitted = ctx.pm.fit_ranker(years, max_consortia, progress=not quiet)
    except ValueError as exc:  # too little history: whatever was saved before stays in use
        raise click.ClickException(f"no ranker fitted: {exc}") from exc
    summary = {
        "kind": fitted.kind,
        "consortia": fitted.consortia,
        "validation_recall@10": fitted.validation,
        "directory": str(ctx.settings.ranker_path),
    }
    if as_json:
        click.echo(json.dumps(summary))
        return
    v = fitted.validation
    click.echo(
        f"fitted on {fitted.consortia} consortia; held-out recall@10: LambdaMART {v['lambdamart']:.3f}, "
        f"default {v['default']:.3f}"
    )
    click.echo(
        "the service will use LambdaMART"
        if fitted.kind == "lambdamart"
        else "LambdaMART does not beat the default scorer: the service keeps the default"
    )


@ranker.command("remove")
@pass_ctx
def ranker_remove(ctx: Context) -> None:
    """Serve the default scorer again."""
    click.echo(
        "removed the fitted ranker; the service uses the default scorer"
        if ctx.pm.remove_ranker()
        else "no fitted ranker to remove"
    )


def _codes(values: tuple[str, ...], check: Callable[[str], str | None]) -> tuple[str, ...]:
    out = []
    for value in values:
        try:
            code = check(value)
        except vocab.UnknownCode as exc:
            raise click.BadParameter(str(exc)) from exc
        if code:
            out.append(code)
    return tuple(out)


@main.command()
@click.argument("text")
@click.option("--country", multiple=True, help="ISO code; repeat for several.")
@click.option("--sector", multiple=True, help="Sector code; repeat for several.")
@click.option("--type", "org_type", multiple=True, help="Organisation type label.")
@click.option("--newcomer/--experienced", default=None, help="Only newcomers, or only experienced.")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="A JSON list.")
@pass_ctx
def search(
    ctx: Context,
    text: str,
    country: tuple[str, ...],
    sector: tuple[str, ...],
    org_type: tuple[str, ...],
    newcomer: bool | None,
    k: int,
    as_json: bool,
) -> None:
    """Nearest organisations to TEXT by profile similarity (the same search as the API and the pages)."""
    query = OrganisationQuery(
        OrganisationFilter(
            countries=_codes(country, vocab.normalise_country),
            sectors=_codes(sector, vocab.check_sector),
            org_types=org_type,
            newcomer=newcomer,
        ),
        theme=text,
        page_size=k,
    )
    try:
        found = ctx.pm.search(query)
    except IndexUnavailable as exc:
        raise click.ClickException("; ".join(exc.reasons)) from exc
    results = [
        {"id": o.id, "name": o.name, "country": o.country, "sector": o.sector, "score": o.score} for o in found.items
    ]
    if as_json:
        click.echo(json.dumps(results, indent=2, ensure_ascii=False))
        return
    for r in results:
        click.echo(f"{r['score']:.3f}  {r['name']}  ({r['country'] or '??'}, {r['sector']})  #{r['id']}")


@main.command()
@click.argument("data", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--protocol", type=click.Choice(["time", "loo"]), default="time", show_default=True)
@click.option("--test-from-year", type=int, help="First year of test projects (time protocol).")
@click.option(
    "--known",
    type=click.Choice(["all", "coordinator", "none"]),
    default="all",
    show_default=True,
    help="What the query knows: every member but one hidden (all), the coordinator alone (coordinator), "
    "or nobody, as for an unregistered applicant (none); the latter two hide every other member.",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="Write the report here.")
@click.option("--limit", type=int, help="Evaluate only the first N queries (for a quick look).")
@click.option(
    "--max-train",
    type=click.IntRange(min=1),
    default=8000,
    show_default=True,
    help="At most this many past consortia (per fold) for the fitted ranker to learn from: fewer for a quick look.",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@pass_ctx
def evaluate(
    ctx: Context,
    data: tuple[Path, ...],
    protocol: str,
    test_from_year: int | None,
    known: str,
    json_out: Path | None,
    limit: int | None,
    max_train: int,
    quiet: bool,
) -> None:
    """Measure how often the matcher finds the partner real consortia chose (any importable data)."""
    from matcher.evaluation import evaluate as run_evaluation
    from matcher.evaluation import format_table

    if protocol == "time" and test_from_year is None:
        raise click.BadParameter("required with --protocol time", param_hint="--test-from-year")
    encoder = ctx.open(check_schema=False).encoder  # the evaluation has a database of its own
    report = run_evaluation(
        list(data),
        protocol,
        test_from_year,
        encoder,
        progress=not quiet,
        limit=limit,
        known=known,
        max_train=max_train,
    )
    click.echo(format_table(report))
    if json_out:
        json_out.write_text(json.dumps(report, indent=2))
        click.echo(f"report written to {json_out}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Run the web service for development (production: gunicorn 'service:create_app()')."""
    from service import create_app

    app = create_app()
    problem = app.extensions["partner_match"].db.schema_problem()
    if problem:
        raise click.ClickException(problem)
    click.echo(f"partner-match on http://{host}:{port}/  (Ctrl+C stops)")
    app.run(host=host, port=port, debug=False, threaded=True)
