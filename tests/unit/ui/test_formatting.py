"""One timestamp format, money with its currency (issue 19). Expected strings by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.template import Context, Template
from django.test import override_settings

from fleet.env import ImproperEnvironment, env_currency
from fleet.ui.tags import ago, money, relative, when

AT = datetime(2026, 12, 5, 6, 29, 37, tzinfo=UTC)


def test_when_is_exact_utc_with_the_instant_for_the_browser() -> None:
    # 07:29:37 in UTC+1 is 06:29:37 UTC: the same instant, shown in UTC by the server
    berlin = AT.astimezone(timezone(timedelta(hours=1)))
    html = str(when(berlin))
    assert html == (
        '<time datetime="2026-12-05T06:29:37Z" title="2026-12-05 06:29:37 UTC" '
        'data-format="exact">2026-12-05 06:29:37 UTC</time>'
    )
    assert when(None) == "—" and when(None, "not yet") == "not yet"


def test_ago_keeps_the_exact_time_on_hover() -> None:
    html = str(ago(AT))
    assert 'title="2026-12-05 06:29:37 UTC"' in html and 'data-format="relative"' in html
    assert ago(None) == "never"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (10, "just now"),
        (90, "2 minutes ago"),  # 1.5 min rounds to 2
        (3 * 3600 + 59 * 60, "3 hours ago"),  # whole hours: not rounded up
        (86400 * 2 + 5, "2 days ago"),
        (-7200, "in 2 hours"),
    ],
)
def test_relative_wording(seconds: int, text: str) -> None:
    assert relative(AT, now=AT + timedelta(seconds=seconds)) == text


def test_builtins_work_in_any_template_without_load() -> None:
    rendered = Template("{{ t|when }} {{ m|money }}").render(Context({"t": AT, "m": Decimal(3)}))
    assert "2026-12-05 06:29:37 UTC" in rendered and "3.00 USD" in rendered


def test_money_shows_the_configured_currency() -> None:
    assert money(Decimal("1234.5")) == "1,234.50 USD"
    assert money(0.125, 3) == "0.125 USD"
    assert money(None) == "—"
    with override_settings(KEELSON_CURRENCY="EUR"):
        assert money(Decimal("9.999")) == "10.00 EUR"


def test_currency_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEELSON_CURRENCY", raising=False)
    assert env_currency("KEELSON_CURRENCY", "USD") == "USD"
    monkeypatch.setenv("KEELSON_CURRENCY", "eur")
    assert env_currency("KEELSON_CURRENCY", "USD") == "EUR"
    monkeypatch.setenv("KEELSON_CURRENCY", "dollars")
    with pytest.raises(ImproperEnvironment, match="not a currency code"):
        env_currency("KEELSON_CURRENCY", "USD")
