"""Every docstring example in ``bitcore`` and ``dashboard`` runs: none can drift from the code."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import bitcore
import dashboard


def _modules() -> list[str]:
    names = []
    for package in (bitcore, dashboard):
        names.append(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            names.append(info.name)
    return names


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
