"""What a browser test watches on every page it opens."""
from __future__ import annotations

import re

# Printed by the probe script test_tips_live.py adds to pages (no <script> in the app, so CSP is unaffected).
OOB_MISSING = "test-probe: no out-of-band target #"


class Page:
    """A page in its own context, recording console errors, script errors, dialogs and navigations."""

    def __init__(self, page):
        self.page = page
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.dialogs: list[str] = []
        self.navigations = 0
        self.missing_oob: list[str] = []  # ids of out-of-band fragments that had no target
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.on("dialog", self._dialog)
        page.on("framenavigated", self._navigated)

    def _console(self, message):
        if message.type == "error":
            self.console_errors.append(message.text)
        elif message.text.startswith(OOB_MISSING):
            self.missing_oob.append(message.text[len(OOB_MISSING):])

    def _dialog(self, dialog):
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def _navigated(self, frame):
        if frame == self.page.main_frame:
            self.navigations += 1

    def assert_clean(self, known_missing_oob: tuple[str, ...] = (), allowed: tuple = ()):
        """No CSP violation, script error, dialog, htmx error or any other console error but
        those matching `allowed` (regexes, e.g. the browser's "Failed to load resource … 402"
        line for a deliberately refused request). `known_missing_oob`: ids of out-of-band
        fragments known to arrive on a page without their target (reported bugs)."""
        where = self.page.url
        csp = [m for m in self.console_errors if "Content Security Policy" in m]
        assert not csp, f"CSP violations in the console of {where}: {csp}"
        assert not self.page_errors, f"uncaught script errors on {where}: {self.page_errors}"
        assert not self.dialogs, f"dialogs were opened on {where}: {self.dialogs}"
        # A fragment meant for another page (htmx logs "htmx:oobErrorNoTarget"), or any other htmx error.
        unexpected = [i for i in self.missing_oob if i not in known_missing_oob]
        assert not unexpected, f"out-of-band fragments without a target on {where}: {unexpected}"
        htmx = [m for m in self.console_errors if "htmx:" in m and m != "htmx:oobErrorNoTarget"]
        assert not htmx, f"htmx errors in the console of {where}: {htmx}"
        # htmx's own errors (e.g. "The selector … on hx-disabled-elt returned no matches!")
        # carry no "htmx:" prefix: every console error counts unless explicitly allowed.
        other = [m for m in self.console_errors if m != "htmx:oobErrorNoTarget" and "htmx:" not in m
                 and not any(re.search(a, m) for a in allowed)]
        assert not other, f"console errors on {where}: {other}"


DESKTOP = {"width": 1280, "height": 900}


def wait_htmx_ready(page, selector: str = "body") -> None:
    """Wait until htmx has processed `selector`'s element (its deferred script ran and
    walked the page): a click on an hx-get button before that does nothing. htmx keeps
    its data on each element it initialised, with an `initHash`, under 'htmx-internal-data'."""
    page.wait_for_function("""(selector) => {
        const el = window.htmx && document.querySelector(selector);
        const data = el && el['htmx-internal-data'];
        return selector === 'body' ? data !== undefined : Boolean(data && data.initHash);
    }""", arg=selector)


def fresh_pages(browser, base_url: str, timeout_ms: int, init_script: str | None = None):
    """The `browse` fixtures' body: yields open(viewport=DESKTOP) → a Page in a fresh
    context of `browser` (no one logged in); closes every context afterwards."""
    contexts = []

    def _open(viewport=DESKTOP) -> Page:
        context = browser.new_context(base_url=base_url, viewport=viewport)
        context.set_default_timeout(timeout_ms)
        if init_script:
            context.add_init_script(init_script)
        contexts.append(context)
        return Page(context.new_page())

    yield _open
    for context in contexts:
        context.close()


def logged_in_pages(browser, base_url: str, timeout_ms: int, init_script: str, log_in):
    """The `open_page` fixtures' body: yields open(user, path, viewport=DESKTOP) → a Page
    in a fresh context of `browser`, logged in through /login and on `path`; closes
    every context afterwards."""
    for open_fresh in fresh_pages(browser, base_url, timeout_ms, init_script):
        def _open(user, path, viewport=DESKTOP) -> Page:
            p = open_fresh(viewport)
            log_in(p, user, path)
            return p
        yield _open


_AXE = None


def axe_violations(page) -> list[dict]:
    """axe-core's WCAG violations on the page as it is now (axe from npm, run through
    the DevTools protocol, so the page's CSP needs no exception for it)."""
    global _AXE
    if _AXE is None:
        from pathlib import Path
        _AXE = (Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js").read_text()
    page.evaluate(_AXE)
    return page.evaluate("""async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
        .map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map(n => n.target.join(" "))}))""")


def assert_no_sideways_scroll(p: Page) -> None:
    """The page is no wider than the window (a phone never scrolls sideways)."""
    widths = p.page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"{p.page.url} scrolls sideways: {widths[0]}px in {widths[1]}px"


def assert_fits_and_accessible(p: Page) -> None:
    """No sideways scroll, and axe finds nothing serious or critical."""
    assert_no_sideways_scroll(p)
    serious = [v for v in axe_violations(p.page) if v["impact"] in ("serious", "critical")]
    assert serious == [], (p.page.url, serious)
