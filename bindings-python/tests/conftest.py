"""Shared fixtures for the binding's tests."""

from __future__ import annotations

import os
from typing import Iterator

import pytest

import strongroom
import strongroom.aio

POSTGRES_URL = os.environ.get(
    "STRONGROOM_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture
def sr() -> Iterator[strongroom.Strongroom]:
    with strongroom.Strongroom.open(strongroom.Config.dev()) as engine:
        yield engine


def root_token(engine: "strongroom.Strongroom | strongroom.aio.Strongroom") -> strongroom.Secret:
    """The dev root token (dev stores always have one)."""
    token = engine.dev_root_token()
    assert token is not None
    return token


@pytest.fixture
def root(sr: strongroom.Strongroom) -> strongroom.Client:
    token = sr.dev_root_token()
    assert token is not None
    return sr.client(token)
