"""The ``valeria-hub`` command.

Each command's module is imported only when that command runs: ``valeria-hub token``
runs inside notebooks whose environment has the package and httpx but none of the
hub's or the operator's dependencies (hvac, kubernetes, the jobs client's YAML).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Collection

DESCRIPTION = (
    "valeria-hub: batch jobs, user onboarding and, inside a notebook, your Keycloak token."
)

# name -> (module, the function that adds its parser, its one-line help as that adds it)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "jobs": (
        "valeria_hub.jobs_client.cli",
        "add_jobs_parser",
        "submit and follow batch jobs on the hub's jobs service",
    ),
    "users": (
        "valeria_hub.onboarding.cli",
        "add_users_parser",
        "onboard users into Vault (uid, gid, S3 keys) and check them",
    ),
    "token": (
        "valeria_hub.token_client",
        "add_token_parser",
        "print your Keycloak access token (inside your notebook)",
    ),
}


def build_parser(full: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The command line: every command in full (``full`` None), or only those named in
    ``full`` with the others listed by name and help, their modules not imported."""
    parser = argparse.ArgumentParser(prog="valeria-hub", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, adder, summary) in COMMANDS.items():
        if full is None or name in full:
            getattr(importlib.import_module(module), adder)(sub)
        else:
            sub.add_parser(name, help=summary, add_help=False)
    return parser


def chosen_command(argv: list[str]) -> str | None:
    """The command ``argv`` names (the first word that is not an option), if any."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    chosen = chosen_command(argv)
    parser = build_parser({chosen} if chosen else ())
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
