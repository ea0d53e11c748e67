"""Nothing from outside the machine: every rendered page and every file the console serves
names no other host, every page sends a Content-Security-Policy allowing only the hub's own
origin, and no page carries inline script or style."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import swagger_ui_bundle

from console.docs import FILES
from tests.console.conftest import ConsoleTeam
from tests.console.test_pages import pages, seed

STATIC = Path(__file__).resolve().parents[2] / "console" / "static"
URL = re.compile(r"""(?:https?:)?//[A-Za-z0-9.\-\[\]:]+""")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.DOTALL | re.IGNORECASE)
HANDLER = re.compile(r"""\son[a-z]+\s*=""", re.IGNORECASE)


def outside_hosts(text: str) -> set[str]:
    found = set()
    for match in URL.finditer(text):
        host = urlsplit(match.group(0) if ":" in match.group(0)[:6] else "http:" + match.group(0))
        if host.hostname and host.hostname not in LOOPBACK:
            found.add(match.group(0))
    return found


def test_every_page_and_file_stays_on_the_hub(crew: ConsoleTeam) -> None:
    s = seed(crew, delivery=True)
    rendered = {name: crew.owner.get(path) for name, path in pages(crew, s).items()}
    rendered["login"] = crew.owner.client.get("/console/login")
    rendered["docs"] = crew.owner.client.get("/docs")
    for name, answer in rendered.items():
        html = answer.get_data(as_text=True)
        assert answer.status_code == 200, name
        assert not outside_hosts(html), (name, outside_hosts(html))
        csp = answer.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp, name
        assert "'unsafe-inline'" not in csp and "http" not in csp, name
        for attributes, body in SCRIPT.findall(html):
            assert "src=" in attributes and not body.strip(), f"{name}: inline script"
        assert "<style" not in html and " style=" not in html, f"{name}: inline style"
        assert not HANDLER.search(html), f"{name}: an inline event handler"
    served = [p for p in STATIC.iterdir() if p.is_file() and p.suffix in (".js", ".css")]
    assert {p.name for p in served} >= {"htmx.min.js", "sse.min.js", "console.css"}
    for path in served:
        answer = crew.owner.client.get(f"/console/static/{path.name}")
        assert answer.status_code == 200, path.name
        assert not outside_hosts(answer.get_data(as_text=True)), path.name
    # Swagger UI's style sheet loads nothing either. Its script's bundled strings name hosts
    # (XML namespaces, error-page links, the validator, switched off by docs-init.js): the
    # browser test of /docs shows that the page requests nothing beyond the hub.
    css = crew.owner.client.get("/docs/ui/swagger-ui.css").get_data(as_text=True)
    assert "url(http" not in css and "@import" not in css
    assert (Path(swagger_ui_bundle.swagger_ui_path) / "swagger-ui-bundle.js").exists()
    assert crew.owner.client.get("/docs/ui/index.html").status_code == 404
    assert "swagger-ui-bundle.js" in FILES
