"""Quantities: the kubernetes client's own parser, behind the apimachinery grammar."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from webhook.policy import quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", Decimal("0.5")), ("1.5Gi", Decimal(1536 * 1024**2)), ("1e3", Decimal(1000)),
     ("0.1", Decimal("0.1")), ("1E", Decimal(10**18)), ("2", Decimal(2)), (".5", Decimal("0.5")),
     ("+1", Decimal(1)), (1, Decimal(1)), (0.25, Decimal("0.25"))],
)  # fmt: skip
def test_valid(text, value):
    assert quantity.parse(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1_000", "nan", "inf", "-1", "1.5Ki5", "12XB",
                                  "1ki", " 1", True, None, [1]])  # fmt: skip
def test_invalid(text):
    with pytest.raises(quantity.QuantityError):
        quantity.parse(text)


def test_the_parser_is_the_kubernetes_clients_own():
    source = Path(quantity.parse_quantity.__code__.co_filename)
    assert source.parts[-3:] == ("kubernetes", "utils", "quantity.py")


def test_parsing_does_not_load_the_api_client():
    check = "import sys, webhook.policy.quantity; print('kubernetes' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                          check=True, timeout=60)  # fmt: skip
    assert done.stdout.strip() == "False"
