"""Numbers in Markdown reports are written as people write them (no exponents, grouped, k/M/G)."""
import math

import pytest
from hypothesis import given, strategies as st

from gancompress.formats.numbers import count, decimal, percent


@pytest.mark.parametrize("value,text", [(83.835, "83.83"), (0.0012345, "0.001234"), (12345.6, "12,346"), (1.0, "1"),
                                        (148.67, "148.7"), (-3.2e-5, "-0.000032"), (0, "0")])
def test_decimal(value, text):
    assert decimal(value) == text


@pytest.mark.parametrize("value,text", [(787905, "788k"), (17055744, "17.1M"), (8667136, "8.67M"), (9801, "9,801"),
                                        (999999, "1M"), (1234567890, "1.23G"), (-327680, "-328k"), (12, "12")])
def test_count(value, text):
    assert count(value) == text


def test_signs_and_percent():
    assert count(-327680, sign=True) == "-328k" and count(4096, sign=True) == "+4,096"
    assert percent(4.49) == "+4.5%" and percent(-0.04) == "-0.04%" and percent(0.0) == "0%"
    assert percent(1234.5) == "+1,234.5%" and percent(math.inf) == "inf" and decimal(math.nan) == "n/a"


@given(st.floats(min_value=-1e12, max_value=1e12, allow_nan=False))
def test_never_an_exponent_and_close_to_the_value(value):
    text = decimal(value)
    assert "e" not in text.lower()
    if abs(value) >= 1e-3:
        assert float(text.replace(",", "")) == pytest.approx(value, rel=1e-3, abs=1e-4)
    assert "e" not in count(value).lower()
