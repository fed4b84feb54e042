"""The built documentation site, opened in a real headless Chromium: the maths and the figures render.

``make docs`` builds the site into ``docs/_build/html``; this test serves it from ``127.0.0.1`` and
drives Chromium over the DevTools protocol (``--remote-debugging-pipe``: NUL-terminated JSON on file
descriptors 3 and 4, nothing but the standard library). It checks that the index links the guide,
the notebooks and the API reference; that on a notebook page and on an API page MathJax typeset
every formula (``mjx-container`` elements, no ``mjx-merror``, no formula left as TeX source); that
every notebook page shows figures, PNGs that loaded (``naturalWidth > 0``); and that the browser
requested nothing outside the local server.

Without a built site or a Chromium the test is skipped, saying which is missing; with
``RNNCORE_REQUIRE_DOCS_SITE=1`` (as ``.ci/run`` sets it, after ``make docs``) it fails instead.
"""

import contextlib
import functools
import http.server
import json
import os
import pathlib
import select
import shutil
import subprocess
import sys
import threading
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SITE = ROOT / "docs" / "_build" / "html"
NOTEBOOK_PAGE = "notebooks/01_backward_by_hand.html"
NOTEBOOK_PAGES = [f"notebooks/{path.stem}.html" for path in sorted(ROOT.glob("notebooks/[0-9][0-9]_*.py"))]
API_PAGE = "_api/rnncore.bptt.html"
TIMEOUT_S = 90.0
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-pipe",
]

# Moves the two pipe ends given as arguments to descriptors 3 and 4, then becomes the browser.
LAUNCHER = (
    "import os, sys; r, w = [os.dup(int(fd)) for fd in sys.argv[1:3]]; os.dup2(r, 3); os.dup2(w, 4); "
    "os.set_inheritable(3, True); os.set_inheritable(4, True); os.execv(sys.argv[3], sys.argv[3:])"
)

# Run in the page once it has loaded: waits for MathJax's typesetting and the images' decoding.
PAGE_REPORT = """(async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const pngs = [...document.images].filter(i => /\\.png$/i.test(new URL(i.src, location.href).pathname));
  await Promise.all(pngs.map(i => i.decode().catch(() => null)));
  const formulas = [...document.querySelectorAll('.math')];
  return {
    title: document.title,
    links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
    typeset: document.querySelectorAll('mjx-container').length,
    math_errors: document.querySelectorAll('mjx-merror').length,
    untypeset: formulas.filter(f => !f.querySelector('mjx-container')).map(f => f.textContent.slice(0, 80)),
    pngs: pngs.map(i => ({src: i.getAttribute('src'), width: i.naturalWidth, height: i.naturalHeight})),
  };
})()"""


def _chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _require_or_skip(reason: str):
    if os.environ.get("RNNCORE_REQUIRE_DOCS_SITE") == "1":
        pytest.fail(f"RNNCORE_REQUIRE_DOCS_SITE=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def site_url():
    if not (SITE / "index.html").is_file():
        _require_or_skip(f"no built documentation site at {SITE} (run `make docs`)")
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


class _DevTools:
    """A headless Chromium and one page of it, spoken to over ``--remote-debugging-pipe``."""

    def __init__(self, binary: str, profile: pathlib.Path):
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()

        # The protocol's pipe ends must be descriptors 3 and 4 in the browser: a small Python launcher
        # puts them there and execs it (no preexec_fn, which is unsafe once threads run).
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                LAUNCHER,
                str(to_browser_read),
                str(from_browser_write),
                binary,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(to_browser_read, from_browser_write),
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        try:
            target = self.call("Target.createTarget", url="about:blank")["targetId"]
            self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            self.call("Page.enable", session=True)
            self.call("Network.enable", session=True)
        except BaseException:
            self.close()
            raise

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium closed the pipe (exit status {self._process.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, session: bool = False, **params) -> dict:
        self._next_id += 1
        request = {"id": self._next_id, "method": method, "params": params}
        if session:
            request["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(request).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            message = self._read_message(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def wait_for(self, method: str) -> dict:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(i)
            self.events.append(self._read_message(deadline))

    def open(self, url: str) -> dict:
        """Load ``url``, wait for its load event and report what :data:`PAGE_REPORT` finds there."""
        self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
        self.call("Page.navigate", session=True, url=url)
        self.wait_for("Page.loadEventFired")
        result = self.call(
            "Runtime.evaluate", session=True, expression=PAGE_REPORT, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"the page script failed on {url}: {result['exceptionDetails']}")
        return result["result"]["value"]

    def requested_urls(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def close(self):
        with contextlib.suppress(Exception):
            self.call("Browser.close")
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


@pytest.fixture(scope="module")
def browser(site_url, tmp_path_factory):
    binary = _chromium()
    if binary is None:
        _require_or_skip("no Chromium found (`apt-get install chromium`, or set CHROMIUM to its path)")
    devtools = _DevTools(binary, tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield devtools
    finally:
        devtools.close()


def _assert_only_local_requests(browser, site_url):
    outside = [u for u in browser.requested_urls() if not u.startswith((site_url, "data:", "blob:", "about:"))]
    assert not outside, f"the site fetched from outside the local server: {outside[:5]}"


def _assert_maths_typeset(report):
    assert report["typeset"] > 0, f"no formula typeset by MathJax on {report['title']!r}"
    assert report["math_errors"] == 0, f"{report['math_errors']} MathJax errors on {report['title']!r}"
    assert not report["untypeset"], f"formulas left as TeX source: {report['untypeset'][:3]}"


def test_index_links_the_guide_the_notebooks_and_the_api(browser, site_url):
    report = browser.open(site_url + "index.html")
    assert "rnncore" in report["title"]
    links = report["links"]
    for page in ("guide/quickstart.html", "notebooks.html", NOTEBOOK_PAGE, "api.html"):
        assert any(link.split("#")[0].endswith(page) for link in links), f"the index does not link {page}"
    _assert_only_local_requests(browser, site_url)


def _assert_figures_loaded(report):
    assert report["pngs"], f"the executed notebook {report['title']!r} shows no PNG figure"
    broken = [png["src"] for png in report["pngs"] if png["width"] == 0 or png["height"] == 0]
    assert not broken, f"figures that did not load: {broken}"


def test_notebook_page_shows_typeset_maths_and_its_figures(browser, site_url):
    report = browser.open(site_url + NOTEBOOK_PAGE)
    _assert_maths_typeset(report)
    _assert_figures_loaded(report)
    _assert_only_local_requests(browser, site_url)


@pytest.mark.parametrize("page", NOTEBOOK_PAGES, ids=[pathlib.Path(p).stem for p in NOTEBOOK_PAGES])
def test_every_notebook_page_shows_its_figures(browser, site_url, page):
    report = browser.open(site_url + page)
    assert report["math_errors"] == 0 and not report["untypeset"], f"formulas not typeset on {page}"
    _assert_figures_loaded(report)
    _assert_only_local_requests(browser, site_url)


def test_api_page_renders_the_docstrings_maths(browser, site_url):
    report = browser.open(site_url + API_PAGE)
    _assert_maths_typeset(report)
    assert any("step_jacobians" in link for link in report["links"]), "rnncore.bptt's functions are not listed"
    _assert_only_local_requests(browser, site_url)
