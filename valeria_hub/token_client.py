"""``valeria-hub token``: the person's own Keycloak access token, inside their notebook.

Asks the hub with the notebook server's own credentials (``JUPYTERHUB_API_URL``,
``JUPYTERHUB_API_TOKEN``, ``JUPYTERHUB_USER``: every single-user server has them); the
hub refreshes the token when it would expire within ``--min-validity`` seconds. Prints
the token (``--json``: with its expiry). Exit status 0; 1 refused (the hub's reason on
stderr, e.g. "log in to the hub again"); 2 usage (not in a notebook); 3 the hub or the
login service cannot be reached (retrying later may help).

Only the standard library and httpx, so that ``python -m valeria_hub.token_client`` also
runs in a notebook image that has no other part of the package's dependencies.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

# the hub's route (valeria_hub.auth.handlers.FRESH_TOKENS_PATH), under JUPYTERHUB_API_URL
TOKEN_PATH = "/valeria/users/{user}/fresh-tokens"
ANSWER_KEYS = ("access_token", "access_token_expires_at", "expires_in")
DEFAULT_MIN_VALIDITY = 60.0
MAX_MIN_VALIDITY = 3600.0
DEFAULT_TIMEOUT = 10.0
# statuses where trying again later may help: the hub's proxy or Keycloak is away
UNREACHABLE_STATUSES = frozenset({502, 503, 504})


class TokenError(Exception):
    """A failure with the message to show and the exit status."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class HubCredentials:
    """Where the hub is and the server's own token (never shown: repr leaves it out)."""

    api_url: str
    user: str
    token: str = field(repr=False)

    def token_url(self) -> str:
        return self.api_url.rstrip("/") + TOKEN_PATH.format(user=quote(self.user, safe=""))


def credentials_from(env: Mapping[str, str]) -> HubCredentials:
    """The notebook server's credentials from its environment, or a usage error."""
    names = ("JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_USER")
    missing = [name for name in names if not env.get(name)]
    if missing:
        raise TokenError(
            f"{', '.join(missing)} not set: run this inside your notebook server "
            "(a terminal or a notebook of JupyterHub)",
            2,
        )
    return HubCredentials(
        env["JUPYTERHUB_API_URL"], env["JUPYTERHUB_USER"], env["JUPYTERHUB_API_TOKEN"]
    )


def hub_message(response: httpx.Response) -> str:
    """The hub's reason for a refusal (its JSON ``message``), else the bare status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(message, str) and message:
        return message
    return f"the hub answered HTTP {response.status_code}"


def read_answer(response: httpx.Response) -> dict[str, Any]:
    """The token and its expiry from the hub's answer, or the refusal as a TokenError."""
    if response.status_code != 200:
        code = 3 if response.status_code in UNREACHABLE_STATUSES else 1
        raise TokenError(hub_message(response), code)
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        raise TokenError("the hub's answer holds no access token", 1)
    if not body["access_token"]:
        raise TokenError("the hub's answer holds no access token", 1)
    return {key: body.get(key) for key in ANSWER_KEYS}


def fetch(
    credentials: HubCredentials,
    min_validity: float,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
) -> dict[str, Any]:
    """Ask the hub for the token; every failure is a TokenError (never with the token)."""
    try:
        with httpx.Client(timeout=timeout, transport=transport) as client:
            response = client.get(
                credentials.token_url(),
                params={"min_validity": f"{min_validity:g}"},
                headers={"Authorization": f"token {credentials.token}"},
            )
    except httpx.HTTPError as e:
        # the exception names only the URL and the error, not the request's headers
        raise TokenError(f"cannot reach the hub at {credentials.api_url}: {e}", 3) from None
    return read_answer(response)


def render(answer: Mapping[str, Any], as_json: bool) -> str:
    """What goes to stdout: the bare token, or the answer as one line of JSON."""
    if as_json:
        return json.dumps(dict(answer), sort_keys=True)
    return str(answer["access_token"])


def seconds(text: str) -> float:
    """argparse type of --min-validity: 0 to 3600 seconds."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= MAX_MIN_VALIDITY:
        raise argparse.ArgumentTypeError(f"a number of seconds from 0 to {MAX_MIN_VALIDITY:.0f}")
    return value


def positive(text: str) -> float:
    """argparse type of --timeout."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError("a positive number of seconds")
    return value


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--min-validity",
        type=seconds,
        default=DEFAULT_MIN_VALIDITY,
        metavar="SECONDS",
        help="the token must stay valid this long; the hub refreshes it if needed (default "
        "60; at most half the lifetime of Keycloak's tokens)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print {access_token, access_token_expires_at, expires_in} as JSON",
    )
    parser.add_argument(
        "--timeout",
        type=positive,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="give up on the hub after this long (default 10)",
    )
    parser.set_defaults(func=run)
    return parser


def add_token_parser(sub: Any) -> None:
    """``valeria-hub token``."""
    configure_parser(
        sub.add_parser(
            "token",
            help="print your Keycloak access token (inside your notebook)",
            description="Print your own Keycloak access token, fresh from the hub, using "
            "your notebook server's credentials. Exit status: 0 printed; 1 refused (e.g. "
            "log in to the hub again); 2 not in a notebook; 3 hub or Keycloak unreachable.",
        )
    )


def run(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    try:
        credentials = credentials_from(os.environ if env is None else env)
        answer = fetch(credentials, args.min_validity, timeout=args.timeout)
    except TokenError as e:
        sys.stderr.write(f"valeria-hub token: {e}\n")
        return e.exit_code
    sys.stdout.write(render(answer, args.json) + "\n")
    sys.stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m valeria_hub.token_client``: the same command without the package's CLI."""
    parser = configure_parser(
        argparse.ArgumentParser(
            prog="valeria-hub token", description="Print your own Keycloak access token."
        )
    )
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
