"""Every page of the app, at phone size (390×844) and desktop size (1280×900), in
Debian's Chromium against the live server (DESIGN.md §8 and §13, "Must hold").

One walk visits each page of `PAGES` as the user it names (logged out, a fan, a
creator, an operator) at both sizes, and checks on each:

- no sideways scroll: `document.documentElement.scrollWidth <= window.innerWidth`;
- every primary button (`PRIMARY_BUTTONS`: `.button.primary` and
  `button[type=submit]` inside <main>, those rendered and not hidden) lies inside
  the viewport's width and is not cut off by an ancestor with `overflow: hidden`
  (or `clip`);
- axe-core: no serious or critical violation;
- `Page.assert_clean`: no CSP violation, script or htmx error, dialog;
- a table marked `stack-sm` (one card per row on a phone) does not scroll sideways;
- the top bar stays one row (`TOPBAR_MAX_HEIGHT`): no nav wrapping to 2–3 rows;
- nothing in <main> spills out of its box (a date wider than its cell running
  into the next one: the squeezed receipt the issue describes).

Then each form of `FORMS` gets a wrong value, and its error must show next to its
field: visible, inside the viewport once scrolled into view, tied to the field
(its `aria-describedby`, else in the same `.field`), and close to it.
Screenshots of every page and size go to `SHOTS` for a human look.

Every problem of every page and size is collected and reported at once, one line
each. To cover a new page or form, add a `Visit` to `PAGES` or a `FormCheck` to
`FORMS`: paths are format strings over the `scene` fixture's names (e.g.
`"/c/{creator_handle}"` for a creator page).
"""
from __future__ import annotations

import re
import uuid
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError, expect

from app.extensions import db
from tests.browser.pages import Page, axe_violations, wait_htmx_ready
from tests.browser.test_tips_live import WS_PROBE, log_in, open_tip_modal
from tests.conftest import close_open_calls
from tests.payouts.conftest import earn  # noqa: F401  (the fixture)

TIMEOUT = 5_000  # ms: generous for a loaded CI box, never a sleep
SIZES = {"390×844": {"width": 390, "height": 844}, "1280×900": {"width": 1280, "height": 900}}
PRIMARY_BUTTONS = "main .button.primary, main button[type=submit]"
SHOTS = Path("/tmp/every-page")
# The "navigation on the phone wraps to 2–3 rows": the top bar (brand and nav, or a
# menu button) must stay one row high, at most this tall (px), at both sizes.
TOPBAR_MAX_HEIGHT = 80
# The error must sit by its field: at most this far (px) below or above it.
ERROR_DISTANCE = 120
# Pages answering 4xx on purpose (the error pages, a refused form) make the browser log the
# status; nothing else may reach the console.
HTTP_ERROR_LOG = r"^Failed to load resource: the server responded with a status of (401|403|404|409|422)\b"


def open_tip(p: Page) -> None:
    open_tip_modal(p)


def open_goal_editor(p: Page) -> None:
    p.page.locator("#goal-editor summary").click()


@dataclass(frozen=True)
class Visit:
    """A page: `path` formatted with the scene, seen by `who` (None: logged out);
    `then` runs once the page is loaded (e.g. opens a modal)."""
    name: str
    who: str | None
    path: str
    then: Callable[[Page], None] | None = None
    status: int = 200


@dataclass(frozen=True)
class FormCheck:
    """A form given wrong values: `values` maps selectors to what is typed (True: check
    it) on `path` (after `then`); it is submitted with its own submit button, and
    `field`'s error must show next to it."""
    name: str
    who: str | None
    path: str
    field: str
    values: dict = field(default_factory=dict)
    then: Callable[[Page], None] | None = None


# The lead extends these two lists as pages and forms are added.
PAGES: list[Visit] = [
    Visit("Discover", None, "/"),
    Visit("log in", None, "/login"),
    Visit("sign up", None, "/signup"),
    Visit("Discover, searching for a creator", None, "/?q=Walk"),
    Visit("creator page", None, "/c/{creator_handle}"),
    Visit("public stream", None, "/streams/{stream}"),
    Visit("OBS overlay", None, "/overlay/{overlay_secret}"),
    Visit("OBS goal overlay", None, "/overlay/{overlay_secret}/goal"),
    Visit("not found page", None, "/no-such-page", status=404),
    Visit("wallet", "fan", "/wallet"),
    Visit("tip receipt", "fan", "/wallet/receipts/{tip_receipt}"),
    Visit("spending", "fan", "/spending"),
    Visit("account", "fan", "/account"),
    Visit("notifications", "fan", "/notifications"),
    Visit("creator page (a follower)", "fan", "/c/{creator_handle}"),
    Visit("private show ticket gate", "fan", "/streams/{show}"),
    Visit("stream with the tip modal open", "fan", "/streams/{stream}", then=open_tip),
    Visit("call (fan)", "fan", "/calls/{call}"),
    Visit("forbidden page", "fan", "/dashboard", status=403),
    Visit("creator dashboard", "creator", "/dashboard"),
    Visit("creator streams", "creator", "/creator/streams"),
    Visit("creator settings", "creator", "/creator/settings"),
    Visit("stream with its chat, moderated (creator)", "creator", "/streams/{stream}"),
    Visit("own stream with the goal editor open", "creator", "/streams/{stream}", then=open_goal_editor),
    Visit("tip menu editor (without JavaScript)", "creator", "/creator/tip-menu"),
    Visit("payouts", "creator", "/payouts"),
    Visit("call (creator)", "creator", "/calls/{call}"),
    Visit("platform", "operator", "/platform"),
    Visit("platform calls", "operator", "/platform/calls"),
    Visit("platform payouts", "operator", "/platform/payouts"),
]

FORMS: list[FormCheck] = [
    FormCheck("log in", None, "/login", "#email", {"#email": "not-an-email", "#password": "x"}),
    FormCheck("sign up", None, "/signup", "#email",
              {"#displayName": "Walker", "#email": "not-an-email", "#password": "long-enough-1"}),
    FormCheck("buy tokens, custom amount", "fan", "/wallet", "#custom-amount", {"#custom-amount": "-5"}),
    FormCheck("tip amount", "fan", "/streams/{stream}", "#tip-custom", {"#tip-custom": "0"}, then=open_tip),
    FormCheck("new stream", "creator", "/creator/streams", "#stream-ticketPrice",
              {"#stream-title": "Walk show", "input[name=type][value=private]": True, "#stream-ticketPrice": "-1"}),
    FormCheck("call settings", "creator", "/creator/settings", "#call-rate", {"#call-rate": "0"}),
    FormCheck("tip goal", "creator", "/streams/{stream}", "#goal-target-input",
              {"#goal-title-input": "Walk goal", "#goal-target-input": "0"}, then=open_goal_editor),
    FormCheck("profile handle", "creator", "/creator/settings", "#profile-handle", {"#profile-handle": "No Spaces!"}),
    FormCheck("alert settings", "creator", "/creator/settings", "#alert-min", {"#alert-min": "-1"}),
    FormCheck("password change", "fan", "/account", "#currentPassword",
              {"#currentPassword": "not-my-password", "#newPassword": "a-new-password-1"}),
    FormCheck("payout request", "creator", "/payouts", "#payout-amount", {"#payout-amount": "abc"}),
    FormCheck("chat message", "fan", "/streams/{stream}", "#chat-text", {"#chat-text": "x" * 501}),
    FormCheck("tip menu item price", "creator", "/creator/settings", "#menu-price-1", {"#menu-price-1": "0"}),
    FormCheck("daily spending limit", "fan", "/wallet", "#daily-spend-limit", {"#daily-spend-limit": "-5"}),
]


@pytest.fixture()
def scene(ctx, make_fan, make_creator, make_user, make_stream, earn, clock, monkeypatch):
    """Everyone and everything the pages need: (users by role, the path names). The creator
    has a payout waiting for an operator's approval (so /payouts has a history and the
    platform's queue a row), a live stream and a live private show, a fan's call request
    and a tip from that fan."""
    from app.calls import service as calls
    from app.follows import service as follows
    from app.goals import service as goals
    from app.notifications import service as notifications
    from app.payouts import service as payouts
    from app.tips import pushes, service as tips

    creator = make_creator(name=f"Walk Creator {uuid.uuid4().hex[:4]}")
    payouts.start_onboarding(creator, refresh_url="http://127.0.0.1/payouts", return_url="http://127.0.0.1/payouts")
    earn(creator, 4_000)
    clock.advance(days=8)  # past the hold
    monkeypatch.setitem(ctx.config, "PAYOUT_REQUIRES_APPROVAL", True)
    payouts.request_payout(creator, 2_000, f"walk-{uuid.uuid4()}")
    calls.update_settings(creator, 60, True)
    stream = make_stream(creator=creator, live=True)
    show = make_stream(creator=creator, type_="private", ticket_price=1_500, live=True)
    fan = make_fan(balance=2_000, name=f"Walk Fan {uuid.uuid4().hex[:4]}")
    goals.set_goal(creator, stream.id, "Walk goal", 1_000)  # the bar, the board and the editor on the stream
    tip = tips.send_tip(fan, creator.id, 25, "", {"streamId": stream.id}, f"walk-{uuid.uuid4()}").tip
    follows.follow(fan, creator.id)
    from app.chat import service as chat
    chat.post_message(fan, stream.id, "Hello from the walk")  # the chat has a message and a tip line
    chat.post_message(creator, stream.id, "Welcome!")
    chat.ban_user(creator, make_fan(name=f"Walk Troll {uuid.uuid4().hex[:4]}").id, 60)  # a ban to list in settings
    from app.protections.service import set_daily_limit
    from app.tipmenu.service import replace_menu
    replace_menu(creator, [{"label": "Song request", "priceTokens": 50},
                           {"label": "A much longer item label that goes on and on to fill sixty", "priceTokens": 100_000}])
    set_daily_limit(fan, 50_000)  # /wallet and the tip modal show what it leaves today
    notifications.announce_live(stream.id)  # the fan's /notifications has the "is live" one
    call = calls.init_call(fan, creator.id, 60)
    pushes.mark_tips_seen(creator.id)  # the nav's unseen-tips badge (see test_payouts.py)
    operator = make_user("fan", name=f"Walk Operator {uuid.uuid4().hex[:4]}")
    operator.is_operator = True
    db.session.commit()
    names = {"stream": stream.id, "show": show.id, "tip_receipt": tip.transfer_id, "call": call.id,
             "overlay_secret": tips.overlay_secret(creator), "creator_id": creator.id,
             "creator_handle": creator.handle}
    yield {"fan": fan, "creator": creator, "operator": operator}, names
    close_open_calls([fan.id, creator.id])


@pytest.fixture()
def contexts(browser, live_server):
    """contexts(who, users) → the Page of `who` (None: logged out), one browser context
    each, logged in once through /login; all closed afterwards."""
    opened: dict = {}

    def _page(who, users) -> Page:
        if who not in opened:
            context = browser.new_context(base_url=live_server, viewport=SIZES["1280×900"])
            context.set_default_timeout(TIMEOUT)
            context.add_init_script(WS_PROBE)
            opened[who] = (context, Page(context.new_page()))
            if who is not None:
                log_in(opened[who][1], users[who], "/account")
        return opened[who][1]
    yield _page
    for context, _ in opened.values():
        context.close()


def _forget(p: Page) -> None:
    """Start the next page's record afresh (one Page serves every page of a user)."""
    p.console_errors.clear()
    p.page_errors.clear()
    p.dialogs.clear()
    p.missing_oob.clear()


def _load(p: Page, path: str, size: dict, status: int, then) -> None:
    p.page.set_viewport_size(size)
    answer = p.page.goto(path)
    assert answer is not None and answer.status == status, f"answered {answer and answer.status}, not {status}"
    p.page.wait_for_load_state("load")
    wait_htmx_ready(p.page)
    _wait_sockets_synced(p)
    if then is not None:
        then(p)


def _wait_sockets_synced(p: Page) -> None:
    """Let each socket's (re)connect state land first (WS_PROBE counts its messages), and the
    htmx requests it sets off: it swaps parts of the page (the balance, and with it the tip
    modal's amount field), and a form filled while that happens loses its field mid-check. A
    settling wait, bounded: a socket that sends nothing on connect just costs the bound."""
    try:
        p.page.wait_for_function("""() => [...document.querySelectorAll("[ws-connect]")]
            .every((el) => el.hasAttribute("data-test-ws-messages"))""", timeout=5_000)
        # The balance in that state fires `balance-changed`, and the tip modal's amount field
        # re-renders itself with an htmx request: let such requests land too (htmx marks the
        # requesting element, or its indicator, with `htmx-request` while one is in flight).
        p.page.wait_for_function("() => !document.querySelector('.htmx-request')", timeout=5_000)
    except PlaywrightTimeoutError:
        pass


_BUTTON_PROBLEMS = """(selector) => {
  const problems = [];
  const width = window.innerWidth;
  for (const el of document.querySelectorAll(selector)) {
    const r = el.getBoundingClientRect();
    if (!el.getClientRects().length || r.width === 0 || r.height === 0
        || getComputedStyle(el).visibility === "hidden") continue;
    const name = (el.innerText || el.value || el.getAttribute("aria-label") || el.id || el.tagName)
      .trim().replace(/\\s+/g, " ").slice(0, 40);
    if (r.left < -0.5 || r.right > width + 0.5) {
      problems.push(`button "${name}" spans x ${Math.round(r.left)}..${Math.round(r.right)} beyond the ${width}px viewport`);
      continue;
    }
    for (let a = el.parentElement; a && a !== document.documentElement; a = a.parentElement) {
      const s = getComputedStyle(a);
      const clipX = ["hidden", "clip"].includes(s.overflowX), clipY = ["hidden", "clip"].includes(s.overflowY);
      if (!clipX && !clipY) continue;
      const b = a.getBoundingClientRect();
      if ((clipX && (r.left < b.left - 0.5 || r.right > b.right + 0.5))
          || (clipY && (r.top < b.top - 0.5 || r.bottom > b.bottom + 0.5))) {
        const where = a.id ? "#" + a.id : a.tagName.toLowerCase() + (a.className ? "." + String(a.className).trim().split(/\\s+/).join(".") : "");
        problems.push(`button "${name}" is cut off by ${where} (overflow: hidden)`);
        break;
      }
    }
  }
  return problems;
}"""


# Tables marked `stack-sm` (one card per row on a phone) must show every column without a
# sideways scroll inside their .table-wrap.
_STACKED_TABLE_PROBLEMS = """() => [...document.querySelectorAll("table.stack-sm")]
  .map(t => t.closest(".table-wrap") || t)
  .filter(w => w.scrollWidth > w.clientWidth + 1)
  .map(w => `table ${w.getAttribute("aria-label") || ""} scrolls sideways: ${w.scrollWidth}px in ${w.clientWidth}px`)"""


# Content spilling out of its box (a long word or date wider than its table cell runs into
# the next one): an element in <main> that lets its overflow show and is wider inside than out.
_SPILLS = """() => {
  const spills = [];
  for (const el of document.querySelectorAll("main *")) {
    const s = getComputedStyle(el);
    if (s.display === "inline" || s.display === "contents" || s.overflowX !== "visible" || el.clientWidth <= 1) continue;  // 1px: visually hidden (sr-only)
    if (el.scrollWidth > el.clientWidth + 1 && !el.closest(".sr-only")) {
      const where = el.id ? "#" + el.id : el.tagName.toLowerCase() + (el.className ? "." + String(el.className).trim().split(/\\s+/).join(".") : "");
      spills.push(`${where} ("${(el.innerText ?? el.textContent ?? "").trim().replace(/\\s+/g, " ").slice(0, 30)}") spills out of its box: ${el.scrollWidth}px in ${el.clientWidth}px`);
    }
  }
  return spills.slice(0, 3);
}"""


def _layout_problems(p: Page) -> list[str]:
    problems = []
    widths = p.page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    if widths[0] > widths[1]:
        problems.append(f"scrolls sideways: {widths[0]}px wide in a {widths[1]}px viewport")
    problems += p.page.evaluate(_BUTTON_PROBLEMS, PRIMARY_BUTTONS)
    problems += p.page.evaluate(_STACKED_TABLE_PROBLEMS)
    problems += p.page.evaluate(_SPILLS)
    topbar = p.page.evaluate("(document.querySelector('header.topbar') || {}).offsetHeight || 0")
    if topbar > TOPBAR_MAX_HEIGHT:
        problems.append(f"the top bar is {topbar}px tall (its nav wraps; at most {TOPBAR_MAX_HEIGHT}px)")
    serious = [v for v in axe_violations(p.page) if v["impact"] in ("serious", "critical")]
    problems += [f"axe {v['impact']}: {v['id']} ({v['help']}) at {v['nodes']}" for v in serious]
    try:
        p.assert_clean(allowed=(HTTP_ERROR_LOG,))
    except AssertionError as err:
        problems.append(str(err).splitlines()[0])
    return problems


_ERROR_OF = """(input) => {
  const ids = (input.getAttribute("aria-describedby") || "").split(/\\s+/).filter(Boolean);
  for (const id of ids) {
    const el = document.getElementById(id);
    if (el && (el.classList.contains("field-error") || el.getAttribute("role") === "alert")) return {how: "aria-describedby", id};
  }
  const box = input.closest(".field, fieldset");
  const near = box && box.querySelector(".field-error");
  if (near) {
    if (!near.id) near.id = "walk-error-" + Math.random().toString(36).slice(2);
    return {how: "same field", id: near.id};
  }
  return null;
}"""

_IN_VIEW = """(el) => {
  const r = el.getBoundingClientRect();
  return [r.left, r.top, r.right, r.bottom, window.innerWidth, window.innerHeight];
}"""


def _form_problems(p: Page, check: FormCheck) -> list[str]:
    page = p.page
    form = page.locator(check.field).locator("xpath=ancestor::form[1]")
    for selector, value in check.values.items():
        if value is True:
            page.locator(selector).check()
        else:
            page.locator(selector).fill(value)
    form.locator("button[type=submit]").last.click()
    field_input = page.locator(check.field)
    try:
        expect(field_input).to_have_attribute("aria-invalid", "true")
    except AssertionError:
        return [f"no error marked on {check.field} after a wrong value"]
    found = field_input.evaluate(_ERROR_OF)
    if found is None:
        return [f"the error of {check.field} is neither in its aria-describedby nor in its .field"]
    error = page.locator(f"#{found['id']}")
    problems = []
    if not error.is_visible():
        return [f"the error of {check.field} is not visible"]
    error.scroll_into_view_if_needed()
    left, top, right, bottom, width, height = error.evaluate(_IN_VIEW)
    if left < -0.5 or right > width + 0.5 or top < -0.5 or bottom > height + 0.5:
        problems.append(f"the error of {check.field} is outside the viewport once scrolled to "
                        f"({round(left)},{round(top)})..({round(right)},{round(bottom)}) in {width}×{height}")
    box = field_input.bounding_box()
    if box is not None:
        gap = max(top - (box["y"] + box["height"]), box["y"] - bottom, 0)
        if gap > ERROR_DISTANCE:
            problems.append(f"the error of {check.field} is {round(gap)}px away from its field")
    try:
        p.assert_clean(allowed=(HTTP_ERROR_LOG,))
    except AssertionError as err:
        problems.append(str(err).splitlines()[0])
    return problems


def test_every_page_fits_a_phone_and_a_desktop_and_every_form_shows_its_error_by_its_field(scene, contexts):
    """The issue's "Must hold": no sideways scroll, primary buttons in view, axe clean and
    a clean console on every page at 390×844 and 1280×900; each form's error next to its
    field. All problems are listed at once."""
    users, names = scene
    SHOTS.mkdir(exist_ok=True)
    problems: list[str] = []
    for visit in PAGES:
        p = contexts(visit.who, users)
        path = visit.path.format(**names)
        for size_name, size in SIZES.items():
            where = f"{visit.name} ({path}, {visit.who or 'logged out'}) at {size_name}"
            _forget(p)
            try:
                _load(p, path, size, visit.status, visit.then)
                problems += [f"{where}: {problem}" for problem in _layout_problems(p)]
                p.page.screenshot(path=SHOTS / f"{re.sub(r'[^a-z0-9]+', '-', visit.name.lower())}-{size['width']}.png",
                                  full_page=True, animations="disabled")
            except Exception as err:  # noqa: BLE001  (a page that fails to load is one more problem)
                problems.append(f"{where}: {type(err).__name__}: {str(err).splitlines()[0]}")
    for check in FORMS:
        p = contexts(check.who, users)
        path = check.path.format(**names)
        for size_name, size in SIZES.items():
            where = f"form '{check.name}' ({path}, {check.who or 'logged out'}) at {size_name}"
            _forget(p)
            try:
                _load(p, path, size, 200, check.then)
                problems += [f"{where}: {problem}" for problem in _form_problems(p, check)]
            except Exception as err:  # noqa: BLE001
                problems.append(f"{where}: {type(err).__name__}: {str(err).splitlines()[0]}")
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)


@pytest.mark.parametrize("role, landing", [("creator", "/dashboard"), ("fan", "/wallet")])
def test_on_a_phone_a_creator_lands_on_the_dashboard_and_a_fan_on_the_wallet_after_logging_in(
        browser, live_server, make_user, role, landing):
    """Issue 17: creators used to land on /wallet ("Buy tokens") after logging in."""
    user = make_user(role)
    context = browser.new_context(base_url=live_server, viewport=SIZES["390×844"])
    context.set_default_timeout(TIMEOUT)
    try:
        p = Page(context.new_page())
        p.page.goto("/login")
        wait_htmx_ready(p.page)
        p.page.get_by_label("Email").fill(user.email)
        p.page.get_by_label("Password").fill(user.test_password)
        p.page.get_by_role("button", name="Log in", exact=True).click()
        expect(p.page).to_have_url(re.compile(r"^https?://[^/]+" + re.escape(landing) + r"$"))
        p.page.wait_for_load_state("load")
        expect(p.page.locator("main h1").first).to_be_visible()
        p.assert_clean()
    finally:
        context.close()
