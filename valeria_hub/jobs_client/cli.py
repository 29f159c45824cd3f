"""``valeria-hub jobs ...``: submit and follow batch jobs from a terminal.

``configure`` stores the service URL and a hub token (made on the hub's Token page) in
``$XDG_CONFIG_HOME/valeria-hub/jobs.json`` (mode 0600); the token is never printed.
``VALERIA_JOBS_URL`` and ``VALERIA_JOBS_TOKEN`` override the file (for scripts).
Tables by default, ``--output json`` for the service's own objects. Every failure is one
line on stderr and a non-zero exit: 1 refused by the service, 2 usage or configuration,
3 service unreachable.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .api import (
    ClientConfig,
    JobsClient,
    JobsError,
    config_path,
    load_config,
    normalize_url,
    save_config,
    service_url,
)
from .spec import SpecError, build_body, load_spec_file, parse_env
from .tables import cronjobs_table, details, events_table, jobs_table, pods_table


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def _json(data: Any) -> None:
    _out(json.dumps(data, indent=2, sort_keys=True, default=str))


def resolve_config(args: argparse.Namespace) -> ClientConfig:
    env = os.environ
    stored = load_config(config_path(env))
    url = args.url or env.get("VALERIA_JOBS_URL") or (stored.url if stored else "")
    token = env.get("VALERIA_JOBS_TOKEN") or (stored.token if stored else "")
    if not url or not token:
        raise JobsError("not configured: run `valeria-hub jobs configure --url URL`", 2)
    return ClientConfig(service_url(url), token)


def connect(args: argparse.Namespace) -> JobsClient:
    config = resolve_config(args)
    return JobsClient(config.url, config.token, timeout=args.timeout)


# -- commands ------------------------------------------------------------------------------
def read_token(args: argparse.Namespace) -> str:
    if args.token:
        return args.token.strip()
    if sys.stdin.isatty():
        return getpass.getpass("JupyterHub API token (from the hub's Token page): ").strip()
    return sys.stdin.readline().strip()


def find_service(url: str, timeout: float) -> str:
    """The service URL itself, or the hub URL with /services/jobs/ appended."""
    url = normalize_url(url)
    candidates = list(dict.fromkeys([url, service_url(url)]))  # as given, then as the hub's
    last: JobsError | None = None
    for candidate in candidates:
        try:
            with JobsClient(candidate, None, timeout) as c:
                c.info()
            return candidate
        except JobsError as e:
            if e.exit_code == 3:
                raise
            last = e
    raise JobsError(f"no jobs service at {url} ({last.message if last else 'unknown'})", 2)


def cmd_configure(args: argparse.Namespace) -> int:
    url = args.url or os.environ.get("VALERIA_JOBS_URL")
    if not url:
        raise JobsError("--url is required: the hub's address or its /services/jobs/ URL", 2)
    token = read_token(args)
    if not token:
        raise JobsError("no token given", 2)
    service_url = find_service(url, args.timeout)
    with JobsClient(service_url, token, args.timeout) as c:
        who = c.whoami()
    path = config_path(os.environ)
    save_config(path, ClientConfig(service_url, token))
    _out(f"Configured {service_url} for {who.get('name')}; settings in {path}")
    return 0


def cmd_submit(args: argparse.Namespace, kind: str) -> int:
    file = load_spec_file(Path(args.file)) if args.file else None
    body = build_body(
        kind,
        file=file,
        name=args.name,
        image=args.image,
        command=args.argv or args.command,
        args=args.args,
        env=parse_env(args.env),
        schedule=getattr(args, "schedule", None),
        profile=args.profile,
        code=Path(args.code) if args.code else None,
        base_dir=Path(args.file).parent if args.file else None,
    )
    with connect(args) as c:
        result = c.submit(kind, body)
    meta = result.get("metadata") or {}
    if args.output == "json":
        _json(result)
    elif args.output == "name":
        _out(meta.get("name", ""))
    else:
        word = "cronjob" if kind == "CronJob" else "job"
        _out(f"{word} {meta.get('name')} submitted (namespace {meta.get('namespace')})")
    return 0


def cmd_list(args: argparse.Namespace, kind: str) -> int:
    """A table or names from the summary list; ``-o json`` the whole objects, which
    scripts read."""
    with connect(args) as c:
        result = c.list(kind, summary=args.output != "json")
    items = result.get("items") or []
    if args.output == "json":
        _json(result)
    elif args.output == "name":
        _out("\n".join((i.get("metadata") or {}).get("name", "") for i in items))
    elif not items:
        _out(f"no {'cronjobs' if kind == 'CronJob' else 'jobs'}")
    else:
        _out(cronjobs_table(items) if kind == "CronJob" else jobs_table(items))
    return 0


def cmd_show(args: argparse.Namespace, kind: str) -> int:
    with connect(args) as c:
        obj = c.show(kind, args.name)
        pods = c.pods(args.name)["items"] if kind == "Job" and args.output != "json" else None
    if args.output == "json":
        _json(obj)
    else:
        _out(details(obj, pods))
    return 0


def cmd_delete(args: argparse.Namespace, kind: str) -> int:
    with connect(args) as c:
        result = c.delete(kind, args.name)
    if args.output == "json":
        _json(result)
    else:
        _out(f"{'cronjob' if kind == 'CronJob' else 'job'} {args.name} deleted")
    return 0


def cmd_events(args: argparse.Namespace, kind: str) -> int:
    with connect(args) as c:
        result = c.events(kind, args.name)
    items = result.get("items") or []
    if args.output == "json":
        _json(result)
    elif not items:
        # the cluster keeps events for about an hour
        _out(f"no events for {'cronjob' if kind == 'CronJob' else 'job'} {args.name}")
    else:
        _out(events_table(items))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    with connect(args) as c:
        if not args.follow:
            text = c.logs(args.name)
            sys.stdout.write(text)
            sys.stdout.flush()
            return 0
        for chunk in c.follow_logs(args.name):
            sys.stdout.write(chunk)
            sys.stdout.flush()
    return 0


def cmd_pods(args: argparse.Namespace) -> int:
    with connect(args) as c:
        result = c.pods(args.job)
    if args.output == "json":
        _json(result)
    else:
        _out(pods_table(result.get("items") or []))
    return 0


def cmd_profiles(args: argparse.Namespace) -> int:
    with connect(args) as c:
        result = c.profiles()
    if args.output == "json":
        _json(result)
        return 0
    for name, p in sorted(result.items()):
        _out(f"{name:<12} {p.get('description', '')}")
    return 0


# -- the parser --------------------------------------------------------------------------------
def _guard(fn: Callable[..., int], *extra: Any) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args, *extra)
        except (JobsError, SpecError) as e:
            message = e.message if isinstance(e, JobsError) else str(e)
            print(f"error: {message}", file=sys.stderr)
            return e.exit_code if isinstance(e, JobsError) else 2

    return run


def _output(p: argparse.ArgumentParser, choices: tuple[str, ...] = ("table", "json")) -> None:
    p.add_argument("-o", "--output", choices=choices, default="table", help="output format")


def _submit_options(p: argparse.ArgumentParser, kind: str) -> None:
    p.add_argument("-f", "--file", help="a YAML file: kbatch's short form or a batch/v1 manifest")
    p.add_argument("-n", "--name", help="exact name (default: a generated one)")
    p.add_argument("--image", help="container image")
    p.add_argument("--command", help="command, split like a shell would (or give it after --)")
    p.add_argument("--args", help="arguments, split like a shell would")
    p.add_argument("-e", "--env", action="append", metavar="KEY=VAL", help="repeatable")
    p.add_argument("-c", "--code", help="a file or directory, zipped and unpacked into /code")
    p.add_argument("-p", "--profile", help="a profile (see `valeria-hub jobs profiles`)")
    if kind == "CronJob":
        p.add_argument("--schedule", help="cron schedule, e.g. '0 3 * * *'")
    p.add_argument("argv", nargs="*", metavar="-- CMD", help="the command and its arguments")
    _output(p, ("table", "json", "name"))


def _resource_commands(sub: Any, kind: str) -> None:
    word = "cronjob" if kind == "CronJob" else "job"
    p = sub.add_parser("submit", help=f"submit a {word}")
    _submit_options(p, kind)
    p.set_defaults(func=_guard(cmd_submit, kind))
    p = sub.add_parser("list", help=f"your {word}s")
    _output(p, ("table", "json", "name"))
    p.set_defaults(func=_guard(cmd_list, kind))
    p = sub.add_parser("show", help=f"one {word}")
    p.add_argument("name")
    _output(p)
    p.set_defaults(func=_guard(cmd_show, kind))
    p = sub.add_parser("events", help=f"a {word}'s Kubernetes events (why it is stuck or failed)")
    p.add_argument("name")
    _output(p)
    p.set_defaults(func=_guard(cmd_events, kind))
    p = sub.add_parser("delete", help=f"delete a {word} (and its pods)")
    p.add_argument("name")
    _output(p)
    p.set_defaults(func=_guard(cmd_delete, kind))


def add_jobs_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``jobs`` sub-command of ``valeria-hub``."""
    jobs = sub.add_parser(
        "jobs",
        help="submit and follow batch jobs on the hub's jobs service",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    jobs.add_argument("--url", help="the jobs service (or hub) URL; default from configure")
    jobs.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    jsub = jobs.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")

    p = jsub.add_parser("configure", help="store the service URL and your hub token")
    p.add_argument("--url", dest="url", default=argparse.SUPPRESS, help="hub or service URL")
    p.add_argument("--token", help="a hub API token (default: read from the terminal/stdin)")
    p.set_defaults(func=_guard(cmd_configure))

    _resource_commands(jsub, "Job")
    p = jsub.add_parser("logs", help="a job's log")
    p.add_argument("name", help="job (its newest pod) or pod name")
    p.add_argument("-f", "--follow", action="store_true", help="follow until the job ends")
    p.set_defaults(func=_guard(cmd_logs))
    p = jsub.add_parser("pods", help="pods of your jobs")
    p.add_argument("--job", help="only this job's pods")
    _output(p)
    p.set_defaults(func=_guard(cmd_pods))
    p = jsub.add_parser("profiles", help="the job profiles")
    _output(p)
    p.set_defaults(func=_guard(cmd_profiles))

    cron = jsub.add_parser("cronjob", help="scheduled jobs")
    csub = cron.add_subparsers(dest="cron_command", required=True, metavar="ACTION")
    _resource_commands(csub, "CronJob")
    return jobs
