"""The ``valeria-hub`` command."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="valeria-hub",
        description="valeria-hub: batch jobs, user onboarding and, inside a notebook, your "
        "Keycloak token.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from .jobs_client.cli import add_jobs_parser

    add_jobs_parser(sub)

    # -- users: onboarding into Vault (valeria_hub/onboarding/cli.py) --
    from .onboarding.cli import add_users_parser

    add_users_parser(sub)

    # -- token: the person's own Keycloak access token, inside their notebook --
    from .token_client import add_token_parser

    add_token_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
