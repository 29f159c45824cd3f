"""The environment's keys: every format the checks accept is one the hub can use."""

from __future__ import annotations

import base64
import secrets

import pytest

from tests.helpers import DEPLOYMENT_ENV
from valeria_hub.envconfig import ConfigError, decode_key, read_settings

RAW = bytes(range(250, 256)) + secrets.token_bytes(26)  # starts with bytes that give +/ in b64


@pytest.mark.parametrize(
    "text",
    [
        RAW.hex(),
        RAW.hex().upper(),
        base64.b64encode(RAW).decode(),
        base64.urlsafe_b64encode(RAW).decode(),
        base64.urlsafe_b64encode(RAW).decode().rstrip("="),
        f"  {RAW.hex()}\n",
    ],
)
def test_hex_and_base64_keys_decode_to_the_same_bytes(text):
    assert decode_key(text) == RAW


@pytest.mark.parametrize("text", ["", "00" * 16, base64.b64encode(b"x" * 31).decode(), "zz" * 32])
def test_other_lengths_and_garbage_are_refused(text):
    assert decode_key(text) is None


def test_settings_carry_the_decoded_keys_and_name_the_bad_ones():
    b64 = base64.b64encode(RAW).decode()
    s = read_settings(
        {
            **DEPLOYMENT_ENV,
            "JUPYTERHUB_CRYPT_KEY": f"{b64};{RAW.hex()}",
            "JUPYTERHUB_COOKIE_SECRET": b64,
        }
    )
    assert s.crypt_keys == (RAW, RAW) and s.cookie_secret == RAW
    assert b64 not in repr(s) and RAW.hex() not in repr(s)
    with pytest.raises(ConfigError) as e:
        read_settings({**DEPLOYMENT_ENV, "JUPYTERHUB_CRYPT_KEY": f"{b64};short"})
    assert any(p.startswith("JUPYTERHUB_CRYPT_KEY must be 32 bytes") for p in e.value.problems)
