"""The approval inbox in headless Chromium (Debian's /usr/bin/chromium) against a running
approver on loopback: sign in with a token, see the pending approvals, approve, reject,
and see markup in a summary shown as text."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from faststream.kafka import KafkaBroker

from shared.contracts import DraftProduced, Topic
from shared.messaging import EventBus
from shared.settings import DatabaseSettings, KafkaSettings

from .conftest import DraftFactory, seed_tenant_orders

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
XSS = '<img src=x onerror="window.__pwned=1">refund'


def _browser_or_fail() -> str:
    """The browser is a declared test dependency (deploy/apt-packages.txt): fail, never skip."""
    path = shutil.which(CHROMIUM) or shutil.which("chromium")
    if path is None:
        pytest.fail(
            "Chromium is not installed: `apt-get install chromium` (CI installs the packages"
            " listed in deploy/apt-packages.txt)",
            pytrace=False,
        )
    return path


def _playwright() -> Any:
    try:
        import playwright.async_api
    except ImportError:
        pytest.fail("playwright is not installed: `uv sync --all-packages`", pytrace=False)
    return playwright.async_api


async def _publish(kafka_settings: KafkaSettings, *drafts: DraftProduced) -> None:
    publisher = KafkaBroker(kafka_settings.bootstrap_servers, enable_idempotence=False)
    async with publisher:
        bus = EventBus(publisher, kafka_settings, service="test")
        for draft in drafts:
            await bus.publish(Topic.DRAFT, draft)


async def _rows_arrive(page: Any, count: int) -> Any:
    rows = page.locator("#approvals tbody tr")
    for _ in range(100):  # the drafts arrive through the topic
        if await rows.count() == count:
            break
        await page.click("#refresh")
        await asyncio.sleep(0.1)
    return rows


async def test_an_l2_approves_and_rejects_in_the_inbox(
    approver_url: str,
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    make_draft: DraftFactory,
    tokens: object,
    tmp_path: Path,
) -> None:
    executable = _browser_or_fail()
    pw_api = _playwright()
    async_playwright, expect = pw_api.async_playwright, pw_api.expect

    tenant = f"t{uuid.uuid4().hex[:8]}"
    seed_tenant_orders(database_settings.dsn, tenant)
    refund = make_draft(
        tenant=tenant,
        arguments={"order_id": "HP-10024", "amount": "300.00", "reason": "torn tent"},
        summary=XSS,
    )
    ticket = make_draft(
        "create_ticket", {"subject": "broken stove", "description": "it broke"}, tenant=tenant
    )
    await _publish(kafka_settings, refund, ticket)
    token = tokens.mint(user_id="kim", tenant_id=tenant, roles=["support"], level="L2")  # type: ignore[attr-defined]

    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh user-data dir
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
        )
        try:
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(f"{approver_url}/inbox")
            await expect(page.locator("#message")).to_contain_text("Sign in")
            await page.fill("#token", token)
            await page.click("#login button[type=submit]")

            rows = await _rows_arrive(page, 2)
            await expect(rows).to_have_count(2)

            refund_row = page.locator(f"tr[data-draft-id='{refund.event_id}']")
            # Markup in the summary is text: shown literally, never parsed or run.
            await expect(refund_row.locator(".summary")).to_have_text(XSS)
            assert await refund_row.locator("img").count() == 0
            assert await page.evaluate("window.__pwned === undefined")
            await expect(refund_row.locator(".policy")).to_contain_text("refund-up-to-500-eur")
            # What the approver decides on: the order, its owner and its money.
            obj = refund_row.locator(".object")
            await expect(obj).to_contain_text("order HP-10024")
            await expect(obj).to_contain_text("owner casey.customer (the requester)")
            await expect(obj).to_contain_text("total 649.00 EUR, refunded 0.00, left 649.00")

            await refund_row.locator("button.approve").click()
            await expect(page.locator("#message")).to_contain_text("Approved")
            await expect(rows).to_have_count(1)

            ticket_row = page.locator(f"tr[data-draft-id='{ticket.event_id}']")
            await ticket_row.locator("button.reject").click()  # no reason yet: refused
            await expect(page.locator("#message")).to_contain_text("Could not reject: 422")
            await ticket_row.locator("input").fill("duplicate of T-1042")
            await ticket_row.locator("button.reject").click()
            await expect(page.locator("#message")).to_contain_text("now rejected")
            await expect(rows).to_have_count(0)

            await page.select_option("#status", "rejected")
            await expect(rows).to_have_count(1)
            await expect(rows.first.locator(".signoffs")).to_contain_text(
                "kim (L2) reject: duplicate of T-1042"
            )
            await page.screenshot(path=str(tmp_path / "inbox.png"))
            assert errors == []
        finally:
            await context.close()


async def test_the_inbox_shows_what_was_refunded_and_what_a_second_refund_would_do(
    approver_url: str,
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    make_draft: DraftFactory,
    tokens: object,
    tmp_path: Path,
) -> None:
    """80 + 45 EUR asked on an 89.90 EUR order: both are shown with the other, and once the
    first is paid the second says it would fail, and does, without paying anything."""
    executable = _browser_or_fail()
    pw_api = _playwright()
    tenant = f"t{uuid.uuid4().hex[:8]}"
    seed_tenant_orders(database_settings.dsn, tenant)

    def refund(amount: str) -> DraftProduced:
        args = {"order_id": "HP-10023", "amount": amount, "currency": "EUR", "reason": "broken"}
        return make_draft(tenant=tenant, arguments=args, summary=f"refund {amount}")

    first, second = refund("80.00"), refund("45.00")
    await _publish(kafka_settings, first, second)
    token = tokens.mint(user_id="kim", tenant_id=tenant, roles=["support"], level="L2")  # type: ignore[attr-defined]

    async with pw_api.async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
        )
        try:
            page = await context.new_page()
            await page.goto(f"{approver_url}/inbox")
            await page.fill("#token", token)
            await page.click("#login button[type=submit]")
            rows = await _rows_arrive(page, 2)
            await pw_api.expect(rows).to_have_count(2)
            first_row = page.locator(f"tr[data-draft-id='{first.event_id}'] .object")
            second_row = page.locator(f"tr[data-draft-id='{second.event_id}'] .object")
            await pw_api.expect(first_row).to_contain_text("other open requests 45.00 (1)")
            await pw_api.expect(second_row).to_contain_text("other open requests 80.00 (1)")
            await pw_api.expect(second_row.locator(".problem")).to_have_count(0)

            await page.locator(f"tr[data-draft-id='{first.event_id}'] button.approve").click()
            await pw_api.expect(page.locator("#message")).to_contain_text("Approved")

            async def paid() -> bool:
                await page.click("#refresh")
                return "refunded 80.00" in (await second_row.text_content() or "")

            for _ in range(100):  # the executor runs the approved refund in the background
                if await paid():
                    break
                await asyncio.sleep(0.1)
            await pw_api.expect(second_row).to_contain_text("refunded 80.00, left 9.90")
            await pw_api.expect(second_row.locator(".problem")).to_contain_text(
                "would fail now: refund of 45.00 EUR exceeds what is left"
            )
            # Approved anyway, it fails at execution with the reason, and pays nothing.
            await page.locator(f"tr[data-draft-id='{second.event_id}'] button.approve").click()
            await pw_api.expect(page.locator("#message")).to_contain_text("Approved")
            await page.select_option("#status", "failed")
            failed = await _rows_arrive(page, 1)
            await pw_api.expect(failed).to_have_count(1)
        finally:
            await context.close()
