"""The approval inbox in headless Chromium (Debian's /usr/bin/chromium) against a running
approver on loopback: sign in with a token, see the pending approvals, approve, reject,
and see markup in a summary shown as text."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn
from faststream.kafka import KafkaBroker

from approver.app import build_service
from approver.settings import ApproverSettings
from devstack.ports import free_port
from devstack.seed import seed_demo_data
from shared.contracts import Topic
from shared.messaging import EventBus
from shared.settings import DatabaseSettings, HttpSettings, KafkaSettings

from .conftest import DraftFactory

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


@pytest.fixture
async def approver_url(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings
) -> AsyncIterator[str]:
    seed_demo_data(database_settings.dsn)
    port = free_port()
    settings = ApproverSettings(
        kafka=kafka_settings, database=database_settings, http=HttpSettings(port=port)
    )
    server = uvicorn.Server(
        uvicorn.Config(
            build_service(settings).http_app(), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_an_l2_approves_and_rejects_in_the_inbox(
    approver_url: str,
    kafka_settings: KafkaSettings,
    make_draft: DraftFactory,
    tokens: object,
    tmp_path: Path,
) -> None:
    executable = _browser_or_fail()
    try:
        from playwright.async_api import async_playwright, expect
    except ImportError:
        pytest.fail("playwright is not installed: `uv sync --all-packages`", pytrace=False)

    tenant = f"t{uuid.uuid4().hex[:8]}"
    refund = make_draft(
        tenant=tenant,
        arguments={"order_id": "HP-10024", "amount": "300.00", "reason": "torn tent"},
        summary=XSS,
    )
    ticket = make_draft(
        "create_ticket", {"subject": "broken stove", "description": "it broke"}, tenant=tenant
    )
    publisher = KafkaBroker(kafka_settings.bootstrap_servers, enable_idempotence=False)
    async with publisher:
        bus = EventBus(publisher, kafka_settings, service="test")
        for draft in (refund, ticket):
            await bus.publish(Topic.DRAFT, draft)
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

            rows = page.locator("#approvals tbody tr")
            for _ in range(100):  # the drafts arrive through the topic
                if await rows.count() == 2:
                    break
                await page.click("#refresh")
                await asyncio.sleep(0.1)
            await expect(rows).to_have_count(2)

            refund_row = page.locator(f"tr[data-draft-id='{refund.event_id}']")
            # Markup in the summary is text: shown literally, never parsed or run.
            await expect(refund_row.locator(".summary")).to_have_text(XSS)
            assert await refund_row.locator("img").count() == 0
            assert await page.evaluate("window.__pwned === undefined")
            await expect(refund_row.locator(".policy")).to_contain_text("refund-up-to-500-eur")

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
