"""The admin pages in a real browser — Debian's Chromium driven by Playwright — against a real
engine process: the sign-in form (POST, the token in the body), dashboard, orders with their
timeline, webhook replay, a projection rebuild followed to the end; and who is kept out (401, 403,
CSRF), and signing out revokes the token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.connection import ASGIConnection
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect, sync_playwright

from entrypoints.http.auth import COOKIE, cookie_allowed
from projections.catalog import NAMES
from tests.e2e.conftest import RunningEngine, pay_in_full, sandbox_admin
from tests.e2e.test_admin import eventually, fulfilled_and_revealed
from tests.e2e.test_catalog import await_status as wait_for_status
from tests.e2e.test_catalog import paid_order, set_faults
from tests.e2e.test_pipeline import ORDER, await_status

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PAGE_HEADERS = {
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
EMBEDDED = pytest.mark.parametrize("engine", ["sqlite+in-process"], indirect=True)
CSRF = {"X-Requested-With": "bitloot-admin"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium from Debian; never a browser that Playwright downloads."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is missing at {CHROMIUM}: run `bash scripts/ensure-browser.sh` "
            "(`make test` does), or `apt-get install chromium` as root",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser, engine: RunningEngine) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies) pointed at the engine."""
    fresh = browser.new_context(base_url=engine.url, viewport={"width": 1280, "height": 900})
    fresh.set_default_timeout(15_000)
    yield fresh
    fresh.close()


def settled(engine: RunningEngine, order_id: str) -> None:
    """Wait until the read models show the order's deliveries and every projection caught up."""
    with engine.client("ops", "admin") as admin:
        eventually(
            lambda: admin.get("/admin/webhook-logs", params={"order_id": order_id}).json()["items"],
            lambda items: {i["provider"] for i in items} == {"nowpayments", "kinguin"},
        )
        eventually(
            lambda: admin.get("/admin/projections").json(),
            lambda ps: all(p["lag_events"] == 0 for p in ps),
        )


def log_in(page: Page, engine: RunningEngine) -> None:
    """The sign-in form: the token is POSTed, and a 303 to ``/admin`` sets the cookie."""
    signed_out = page.goto("/admin")
    assert signed_out is not None
    assert signed_out.status == 401
    page.get_by_label("Admin token").fill(engine.token("ops", "admin"))
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Sign in").click()
    response = navigation.value
    assert response is not None
    assert response.status == 200
    assert page.url == f"{engine.url}/admin"
    redirect = response.request.redirected_from
    assert redirect is not None
    first = redirect.response()
    assert first is not None
    assert first.status == 303
    assert {k: first.headers[k] for k in PAGE_HEADERS} == PAGE_HEADERS
    [cookie] = page.context.cookies()
    assert cookie["name"] == COOKIE
    assert cookie.get("httpOnly") is True
    assert cookie.get("sameSite") == "Strict"
    assert cookie.get("path") == "/"
    assert cookie.get("secure") is False  # plain http on loopback


def see_dashboard(page: Page) -> None:
    """The landing section counts the fulfilled order, lists the projections, states the
    Kinguin balance, and charts the hour's order (its figures readable as a table), by hour
    and then by day."""
    expect(page.get_by_role("link", name="Dashboard")).to_have_attribute("aria-current", "page")
    expect(page.locator('#dash-status tr[data-status="fulfilled"] td')).to_have_text("1")
    expect(page.locator("#dash-projections tbody tr")).to_have_count(len(NAMES))
    expect(page.locator("#dash-totals")).to_contain_text("orders measured")
    expect(page.locator("#dash-balance")).to_contain_text("EUR")
    expect(page.locator("#dash-charts figure svg")).to_have_count(5)
    page.screenshot(path=ARTIFACTS / "admin-dashboard.png", full_page=True)
    orders = page.locator("#chart-orders")
    orders.get_by_text("Figures").click()
    fulfilled = orders.locator("tbody td:nth-of-type(2)").filter(has_text=re.compile(r"^1$"))
    expect(fulfilled).to_have_count(1)  # in one hour (the last, or the one before at :00)
    page.get_by_label("By day, 30 days").check()
    expect(orders.locator("tbody tr")).to_have_count(30)
    expect(fulfilled).to_have_count(1)


def see_order(page: Page, order_id: str) -> None:
    """Orders filtered by status (submitted with Enter), then the order's detail, Kinguin's view
    of its purchase, and its timeline."""
    page.get_by_role("link", name="Orders").click()
    orders = page.locator("#orders")
    orders.get_by_label("Status", exact=True).select_option("fulfilled")
    orders.get_by_label("Per page").press("Enter")
    expect(orders.locator("#orders-table tbody tr")).to_have_count(1)
    orders.get_by_role("link", name=order_id).click()
    expect(page.locator("#order-h")).to_have_text(f"Order {order_id}")
    expect(page.locator("#order-h")).to_be_focused()
    timeline = page.locator("#order-timeline > li strong")
    expect(timeline.first).to_have_text("OrderPlaced")
    expect(timeline.filter(has_text=re.compile("^OrderFulfilled$"))).to_have_count(1)
    expect(page.locator("#order-fields")).to_contain_text("fulfilled")
    expect(page.get_by_role("button", name="Retry fulfilment")).to_be_disabled()
    page.get_by_role("button", name="Ask Kinguin").click()
    expect(page.locator("#order-supplier-view")).to_contain_text(
        f"(external id {order_id}): completed"
    )
    page.screenshot(path=ARTIFACTS / "admin-order.png", full_page=True)


def see_reads_and_reservation(page: Page, order_id: str) -> None:
    """From the order, its key audit (the owner's reveal); then its Kinguin reservation."""
    page.locator("#order-detail").get_by_role("link", name="Key audit").click()
    audit = page.locator("#audit")
    expect(audit).to_be_visible()
    expect(audit.get_by_label("Order id")).to_have_value(order_id)
    reads = audit.locator("tbody tr")
    expect(reads).to_have_count(1)
    expect(reads.first).to_contain_text("gina")
    expect(reads.first).to_contain_text("reveal")
    page.screenshot(path=ARTIFACTS / "admin-audit.png", full_page=True)
    page.get_by_role("link", name="Reservations").click()
    reservations = page.locator("#reservations")
    reservations.get_by_label("Order id").fill(order_id)
    reservations.get_by_role("button", name="Apply").click()
    expect(reservations.locator("tbody tr")).to_have_count(1)
    expect(reservations.locator("tbody tr").first).to_contain_text("completed")
    page.screenshot(path=ARTIFACTS / "admin-reservations.png", full_page=True)


def replay_webhook(page: Page, order_id: str) -> None:
    """The order's NOWPayments delivery: its stored body, then a replay that changes nothing."""
    page.get_by_role("link", name="Webhooks").click()
    webhooks = page.locator("#webhooks")
    webhooks.get_by_label("Provider").select_option("nowpayments")
    webhooks.get_by_label("Order id").fill(order_id)
    webhooks.get_by_label("Order id").press("Enter")
    expect(webhooks.locator("#webhooks-table tbody tr")).to_have_count(1)
    webhooks.get_by_role("link", name=re.compile("^Details of delivery ")).click()
    expect(page.locator("#webhook-body")).to_contain_text('"payment_status": "finished"')
    replay = webhooks.locator("#webhooks-table").get_by_role("button", name=re.compile("^Replay"))
    replay.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#webhooks-status")).to_have_text(
        re.compile(r"^Replayed delivery [0-9a-f-]{36}: no change\.$")
    )
    expect(replay).to_be_focused()
    page.screenshot(path=ARTIFACTS / "admin-webhooks.png", full_page=True)


def rebuild_orders(page: Page) -> None:
    """A rebuild of ``orders`` followed until version 2 is live."""
    page.get_by_role("link", name="Projections").click()
    page.get_by_role("button", name="Rebuild orders").click()
    expect(page.locator("#projections-status")).to_have_text(
        re.compile(r"^orders rebuilt: version 2, live"), timeout=60_000
    )
    row = page.locator('#projections-table tr[data-name="orders"]')
    expect(row.locator("td").nth(0)).to_have_text("2")
    expect(row.locator("td").nth(1)).to_have_text("live")
    page.screenshot(path=ARTIFACTS / "admin-projections.png", full_page=True)


@EMBEDDED
def test_admin_pages_in_a_browser(engine: RunningEngine, context: BrowserContext) -> None:
    """Sign in with the form, read the dashboard, an order's timeline, replay a webhook, rebuild a
    projection; a cookie-authenticated POST without the CSRF header is refused; sign out."""
    with engine.client("gina") as gina:
        order_id = fulfilled_and_revealed(engine, gina)
    settled(engine, order_id)
    page = context.new_page()
    log_in(page, engine)  # (the sign-in page itself answers 401, which the console reports)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    ARTIFACTS.mkdir(exist_ok=True)

    see_dashboard(page)
    see_order(page, order_id)
    see_reads_and_reservation(page, order_id)
    replay_webhook(page, order_id)
    rebuild_orders(page)
    page.screenshot(path=ARTIFACTS / "admin.png", full_page=True)
    assert problems == []

    no_csrf_header = "fetch('/admin/projections/orders/rebuild', {method: 'POST'})"
    assert page.evaluate(f"async () => (await {no_csrf_header}).status") == 401
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to BitLoot admin")).to_be_visible()
    assert context.cookies() == []


@EMBEDDED
def test_admin_page_keeps_out_whoever_is_not_an_admin(engine: RunningEngine) -> None:
    """No credential → 401 page; a user's token → 403 page; the JSON API stays behind the JWT."""
    with httpx.Client(base_url=engine.url, timeout=10) as anyone:
        nobody = anyone.get("/admin")
        assert nobody.status_code == 401
        assert nobody.headers["content-type"].startswith("text/html")
        assert 'action="/admin/login"' in nobody.text
        assert {k: nobody.headers[k] for k in PAGE_HEADERS} == PAGE_HEADERS
        user = anyone.post("/admin/login", data={"token": engine.token("mallory")})
        assert user.status_code == 403
        assert "set-cookie" not in user.headers
        assert anyone.post("/admin/login", data={"token": "not-a-jwt"}).status_code == 401
        in_url = anyone.get("/admin", params={"token": engine.token("ops", "admin")})
        assert in_url.status_code == 401  # a token in a URL is never taken
        assert "set-cookie" not in in_url.headers
        bearer = {"Authorization": f"Bearer {engine.token('mallory')}"}
        assert anyone.get("/admin", headers=bearer).status_code == 403
        admin_bearer = {"Authorization": f"Bearer {engine.token('ops', 'admin')}"}
        page = anyone.get("/admin", headers=admin_bearer)
        assert page.status_code == 200
        assert 'src="/admin/static/admin.js"' in page.text
        assert anyone.get("/admin/dashboard").status_code == 401
        script = anyone.get("/admin/static/admin.js")
        assert script.status_code == 200
        assert script.headers["cache-control"] == "no-cache"
        logout = anyone.post("/admin/logout", headers=admin_bearer)
        assert logout.status_code == 303
        assert f"{COOKIE}=" in logout.headers["set-cookie"]
        assert anyone.get("/admin", headers=admin_bearer).status_code == 401  # revoked
        assert anyone.get("/admin/dashboard", headers=admin_bearer).status_code == 401


@EMBEDDED
def test_the_session_cookie_authenticates_reads_and_csrf_guarded_posts(
    engine: RunningEngine,
) -> None:
    """The cookie turns into a bearer header before the JWT middleware (reads pass); a POST needs
    X-Requested-With too; a user's token in the cookie gets no further than a user would."""
    cookies = {COOKIE: engine.token("ops", "admin")}
    with httpx.Client(base_url=engine.url, timeout=10, cookies=cookies) as browser_like:
        assert browser_like.get("/admin").status_code == 200
        assert browser_like.get("/admin/dashboard").status_code == 200
        rebuild = "/admin/projections/nope/rebuild"
        assert browser_like.post(rebuild).status_code == 401
        assert browser_like.post(rebuild, headers={"X-Requested-With": "fetch"}).status_code == 401
        assert browser_like.post(rebuild, headers=CSRF).status_code == 404  # authenticated
    user_cookie = {COOKIE: engine.token("mallory")}
    with httpx.Client(base_url=engine.url, timeout=10, cookies=user_cookie) as mallory:
        assert mallory.get("/admin").status_code == 403
        assert mallory.get("/admin/dashboard").status_code == 403


def test_the_cookie_alone_changes_state_only_with_the_csrf_header() -> None:
    """A bearer credential wins; a safe method passes; an unsafe method that only the cookie
    authenticates needs the CSRF header, whatever non-bearer Authorization header it carries."""
    cookie = (b"cookie", f"theme=dark; {COOKIE}=a.b.c".encode())
    csrf = (b"x-requested-with", b"bitloot-admin")
    own = (b"authorization", b"Bearer x.y.z")

    def allowed(method: str, *headers: tuple[bytes, bytes]) -> bool:
        scope = {"type": "http", "method": method, "headers": list(headers), "path": "/"}
        return cookie_allowed(ASGIConnection(scope))  # type: ignore[arg-type]

    assert allowed("GET", cookie)
    assert not allowed("POST", cookie)
    assert not allowed("POST", cookie, (b"x-requested-with", b"fetch"))
    assert allowed("POST", cookie, csrf)
    assert allowed("POST", cookie, own)
    for other in (b"Basic x", b"Basic", b"Bearer", b"x.y.z"):
        assert not allowed("POST", cookie, (b"authorization", other)), other
    assert allowed("POST")  # no cookie: the bearer check decides


def ordered(client: httpx.Client, email: str) -> tuple[str, dict[str, Any]]:
    """An order placed with ``email``, and its invoice."""
    order = client.post("/orders", json={**ORDER, "email": email})
    assert order.status_code == 201, order.text
    invoice = client.post("/payments/create", json={"order_id": order.json()["id"]})
    assert invoice.status_code == 201, invoice.text
    return str(order.json()["id"]), invoice.json()


def paid_partly(client: httpx.Client, invoice: dict[str, Any]) -> None:
    answer = client.post(
        f"/sandbox/nowpayments/payments/{invoice['payment_id']}/simulate",
        json={"status": "partially_paid"},
        headers=sandbox_admin(),
    )
    assert answer.json()["ipn_status_code"] == 200, answer.text


def find_orders(page: Page, **fields: str) -> Locator:
    """Fill the orders' search form (by label) and submit it; the rows found."""
    page.get_by_role("link", name="Orders").click()
    search = page.locator("#orders-filter")
    search.get_by_role("button", name="Clear").click()
    for label, value in fields.items():
        search.get_by_label(label, exact=True).fill(value)
    search.get_by_role("button", name="Find").click()
    return page.locator("#orders-table tbody tr")


def confirm_action(page: Page, button: str, amount: str | re.Pattern[str], outcome: str) -> None:
    """Press an order's action button, read the amount in the confirmation, confirm."""
    page.locator("#order-detail").get_by_role("button", name=button).click()
    dialog = page.locator("#confirm")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#confirm-text")).to_contain_text(amount)
    page.screenshot(path=ARTIFACTS / f"console-confirm-{button.lower().replace(' ', '-')}.png")
    dialog.get_by_role("button", name="Confirm").click()
    expect(page.locator("#order-status")).to_have_text(f"Done: the order is now {outcome}.")
    expect(page.locator("#order-fields")).to_contain_text(outcome)


@EMBEDDED
def test_the_console_finds_orders_acts_on_them_and_follows_them_live(
    engine: RunningEngine, context: BrowserContext
) -> None:
    """Find an order by e-mail and refund it (underpaid: what arrived goes back); find one by id
    and return its keys; then watch a new order appear and reach fulfilled without a reload."""
    with engine.client("nia") as nia, engine.client("omar") as omar:
        underpaid, invoice = ordered(nia, "Nia@Shop.example")
        paid_partly(nia, invoice)
        assert await_status(nia, underpaid)[-1] == "underpaid"
        fulfilled, invoice = ordered(omar, "omar@shop.example")
        pay_in_full(omar, invoice)
        assert await_status(omar, fulfilled)[-1] == "fulfilled"
    settled(engine, fulfilled)
    page = context.new_page()
    log_in(page, engine)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    ARTIFACTS.mkdir(exist_ok=True)
    expect(page.locator("#live")).to_have_text("Live updates: on")

    rows = find_orders(page, **{"E-mail": "nia@shop.EXAMPLE"})
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("underpaid")
    rows.first.get_by_role("link", name=underpaid).click()
    expect(page.get_by_role("button", name="Retry fulfilment")).to_be_disabled()
    # half of the 28.97 arrived, as the sandbox's rate converted it back
    confirm_action(page, "Refund", re.compile(r": 14\.48[0-9]* EUR goes back"), "refunded")

    rows = find_orders(page, **{"Order id": fulfilled})
    expect(rows).to_have_count(1)
    rows.first.get_by_role("link", name=fulfilled).click()
    expect(page.get_by_role("button", name="Refund")).to_be_disabled()
    expect(page.locator("#order-action-hints")).to_contain_text("only paid orders")
    confirm_action(page, "Return keys", "28.97 EUR", "refunded")

    rows = find_orders(page)
    expect(rows).to_have_count(2)
    with engine.client("pia") as pia:
        new, invoice = ordered(pia, "pia@shop.example")
        expect(page.get_by_role("link", name=new)).to_be_visible()  # no reload
        pay_in_full(pia, invoice)
        row = page.locator("#orders-table tbody tr", has=page.get_by_role("link", name=new))
        expect(row).to_contain_text("fulfilled", timeout=30_000)
    page.screenshot(path=ARTIFACTS / "console-orders.png", full_page=True)
    assert problems == []


@EMBEDDED
def test_the_console_previews_a_pricing_rule_then_saves_it(
    engine: RunningEngine, context: BrowserContext
) -> None:
    """Catalog and pricing: a new margin previewed on the page (nothing saved), sorted by the new
    price, then saved after a confirmation; the prices are then the ones previewed."""
    page = context.new_page()
    log_in(page, engine)
    page.get_by_role("link", name="Catalog").click()
    table = page.locator("#catalog-table tbody tr")
    expect(table.first).to_be_visible()
    pricing = page.locator("#pricing-form")
    expect(pricing.get_by_label("Margin (%)")).to_have_value("20")
    pricing.get_by_label("Margin (%)").fill("35")
    pricing.get_by_role("button", name="Preview").click()
    status = page.locator("#catalog-status")
    expect(status).to_contain_text("would change price. Nothing is saved yet.")
    with engine.client("ops", "admin") as admin:
        assert admin.get("/admin/pricing").json()["margin_percent"] == "20"
    page.get_by_role("button", name="New price").click()
    expect(page.locator("#catalog-table th[aria-sort]")).to_have_attribute("aria-sort", "ascending")
    first = table.first
    product = first.get_attribute("data-product")
    previewed = first.locator("td").nth(6).inner_text()
    page.screenshot(path=ARTIFACTS / "console-catalog-preview.png", full_page=True)
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#confirm-text")).to_contain_text("Set the margin to 35 %")
    page.locator("#confirm").get_by_role("button", name="Confirm").click()
    expect(page.locator("#pricing-status")).to_have_text(re.compile(r"^Saved: [0-9]+ product"))
    repriced = page.locator(f'#catalog-table tr[data-product="{product}"] td').nth(3)
    expect(repriced).to_have_text(previewed)
    with engine.client("ops", "admin") as admin:
        assert admin.get("/admin/pricing").json()["margin_percent"] == "35"


@EMBEDDED
def test_the_console_queue_accepts_a_moved_supplier_price(
    engine: RunningEngine, context: BrowserContext
) -> None:
    """Kinguin's price jumps by half between payment and purchase: the order waits in "Needs
    attention"; accepting the new cost states it (8.69 EUR a key, sold at 6.99: margin -1.70),
    and the order is bought at it and fulfilled; the queue is then empty."""
    set_faults(engine.url, price_jump=50)
    with engine.client("quinn") as quinn:
        order_id = paid_order(quinn)
        wait_for_status(quinn, order_id, "fulfillment_failed")
    page = context.new_page()
    log_in(page, engine)
    page.get_by_role("link", name="Needs attention").click()
    row = page.locator(f'#attention-table tr[data-order="{order_id}"]')
    expect(row).to_contain_text("Kinguin's price moved")
    expect(row.get_by_role("button", name=re.compile("^Refund"))).to_be_visible()
    row.get_by_role("button", name=re.compile("^Accept new cost")).click()
    expect(page.locator("#confirm-text")).to_contain_text(
        "8.69 EUR a key, sold at 6.99 EUR (margin -1.70 EUR a key)"
    )
    page.screenshot(path=ARTIFACTS / "console-attention.png", full_page=True)
    page.locator("#confirm").get_by_role("button", name="Confirm").click()
    expect(page.locator("#attention-status")).to_contain_text(f"Order {order_id}: accept new cost")
    with engine.client("quinn") as quinn:
        wait_for_status(quinn, order_id, "fulfilled")
    expect(page.locator("#attention-table tbody tr")).to_have_text("Nothing matches.")


@EMBEDDED
def test_the_console_reads_at_phone_width_and_works_from_the_keyboard(
    browser: Browser, engine: RunningEngine
) -> None:
    """At 390 px nothing makes the page scroll sideways (wide tables scroll inside themselves);
    the sections are reached with Tab and Enter, and the confirmation dialog takes Escape."""
    phone = browser.new_context(base_url=engine.url, viewport={"width": 390, "height": 844})
    try:
        page = phone.new_page()
        log_in(page, engine)
        for section in ("dashboard", "attention", "orders", "catalog", "webhooks", "projections"):
            page.goto(f"/admin#{section}")
            expect(page.locator(f"#{section} tbody tr").first).to_be_visible()  # drawn
            width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
            assert width[0] <= width[1], (section, width)
        page.screenshot(path=ARTIFACTS / "console-phone.png", full_page=True)
        page.goto("/admin#dashboard")
        link = page.get_by_role("link", name="Catalog")
        for _ in range(40):
            page.keyboard.press("Tab")
            if link.evaluate("(node) => node === document.activeElement"):
                break
        expect(link).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("#catalog-h")).to_be_focused()
        page.locator("#pricing-save").focus()
        page.keyboard.press("Enter")
        expect(page.locator("#confirm")).to_be_visible()
        page.keyboard.press("Escape")
        expect(page.locator("#confirm")).to_be_hidden()
    finally:
        phone.close()


def queued_kind(engine: RunningEngine, order_id: str) -> str | None:
    with engine.client("ops", "admin") as admin:
        items = admin.get("/admin/attention").json()["items"]
    return next((row["kind"] for row in items if row["order_id"] == order_id), None)


@EMBEDDED
def test_the_console_queue_resumes_a_held_purchase_and_settles_a_flagged_payment(
    engine: RunningEngine, context: BrowserContext
) -> None:
    """With no Kinguin balance an order is held; after a top-up "Resume purchase" (its total in
    the confirmation) buys it. Money for a refunded order is flagged; "Resolve" asks for a
    note and will not go without one; with it, the flag is cleared and the row leaves."""
    set_faults(engine.url, balance=0)
    with engine.client("rosa") as rosa, engine.client("ops", "admin") as admin:
        held = paid_order(rosa)
        late, invoice = ordered(rosa, "rosa@shop.example")
        paid_partly(rosa, invoice)
        wait_for_status(rosa, late, "underpaid")
        assert admin.post(f"/admin/orders/{late}/refund").status_code == 200
        pay_in_full(rosa, invoice)
    kinds = eventually(
        lambda: (queued_kind(engine, held), queued_kind(engine, late)),
        lambda found: found == ("held", "flagged"),
    )
    assert kinds == ("held", "flagged")
    page = context.new_page()
    log_in(page, engine)
    page.get_by_role("link", name="Needs attention").click()
    set_faults(engine.url, balance=1000)
    row = page.locator(f'#attention-table tr[data-order="{held}"]')
    expect(row).to_contain_text("Held for the supplier's balance")
    row.get_by_role("button", name=re.compile("^Resume purchase")).click()
    expect(page.locator("#confirm-text")).to_contain_text("6.99 EUR")
    page.locator("#confirm").get_by_role("button", name="Confirm").click()
    expect(page.locator("#attention-status")).to_contain_text(f"Order {held}: resume purchase done")
    with engine.client("rosa") as rosa:
        wait_for_status(rosa, held, "fulfilled")

    row = page.locator(f'#attention-table tr[data-order="{late}"]')
    expect(row).to_contain_text("received for an order that is refunded")
    row.get_by_role("button", name=re.compile("^Resolve")).click()
    dialog = page.locator("#confirm")
    expect(dialog.get_by_label("Note, kept in the order's history")).to_be_visible()
    dialog.get_by_role("button", name="Confirm").click()
    expect(dialog).to_be_visible()  # a note is required
    dialog.get_by_label("Note, kept in the order's history").fill("sent back, refund 4711")
    page.screenshot(path=ARTIFACTS / "console-resolve.png", full_page=True)
    dialog.get_by_role("button", name="Confirm").click()
    expect(page.locator("#attention-status")).to_contain_text(f"Order {late}: resolve done")
    expect(row).to_have_count(0)
    with engine.client("ops", "admin") as admin:
        history = admin.get(f"/orders/{late}/history").json()
    resolved = [e["data"] for e in history if e["type"] == "PaymentFlagsResolved"]
    assert [(r["by"], r["note"]) for r in resolved] == [("ops", "sent back, refund 4711")]
