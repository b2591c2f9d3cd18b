"""A news site on 127.0.0.1 for tests and benchmarks: an RSS feed, an Atom feed with full text,
a news sitemap, article pages, robots.txt, and the ways real sites fail.

The site is mutable while it runs: ``publish`` adds an article (it appears at the top of the
feeds), ``edit`` changes one (new text and a new updated date in the feeds). Validators are
real: ETag and Last-Modified on every page and feed, 304 for a matching conditional request.
Every request is logged as ``(path, headers)`` so tests can see what a client sent.

Routes besides the articles (``/news/<slug>``):

    /robots.txt       disallows /private/ for newsdesk
    /feed.xml         RSS 2.0, items without full text (pages must be fetched), gzip if asked
    /atom.xml         Atom 1.0 with full text in <content>
    /sitemap.xml      a news sitemap of every article; /sitemap-index.xml points at it
    /loop/a, /loop/b  redirect to each other forever
    /missing          404        /error       500        /slow  answers after `slow_seconds`
    /huge             20 MB page /report.pdf  a PDF      /broken.xml  truncated RSS
    /paywall          a page with two lines of teaser    /private/story  disallowed by robots
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import formatdate
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class SiteArticle:
    slug: str
    title: str
    published: str  # ISO date
    paragraphs: list[str]
    author: str = "Staff Reporter"
    updated: float = field(default_factory=time.time)

    @property
    def published_rfc822(self) -> str:
        day = datetime.fromisoformat(self.published).replace(hour=9, tzinfo=timezone.utc)
        return formatdate(day.timestamp(), usegmt=True)

    def html(self) -> str:
        body = "".join(f"<p>{escape(p)}</p>" for p in self.paragraphs)
        return (
            "<!doctype html><html><head>"
            f"<title>{escape(self.title)} | Loopback Times</title>"
            '<meta property="og:site_name" content="Loopback Times">'
            f'<meta name="author" content="{escape(self.author)}">'
            f'<meta property="article:published_time" content="{self.published}T09:00:00Z">'
            "</head><body><nav><a href='/'>Home</a> | <a href='/world'>World</a></nav>"
            f"<article><h1>{escape(self.title)}</h1>{body}</article>"
            "<footer>Copyright Loopback Times. All rights reserved.</footer></body></html>"
        )


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


PAYWALL = (
    "<!doctype html><html><head><title>Exclusive | Loopback Times</title></head><body>"
    "<article><h1>Exclusive</h1><p>Subscribe to read this story.</p></article></body></html>"
)
BROKEN_RSS = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>Broken</title><item><title>Half'
)


class NewsSite:
    def __init__(self, articles: list[SiteArticle] | None = None) -> None:
        self.articles: dict[str, SiteArticle] = {}
        for article in articles or []:
            self.articles[article.slug] = article
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.slow_seconds = 3.0
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- changing the site ------------------------------------------------------------------
    def publish(self, article: SiteArticle) -> None:
        with self.lock:
            self.articles[article.slug] = article

    def edit(self, slug: str, paragraphs: list[str]) -> None:
        with self.lock:
            article = self.articles[slug]
            article.paragraphs = paragraphs
            article.updated = max(time.time(), article.updated + 1)

    def paths(self, prefix: str = "") -> list[str]:
        return [path for path, _ in self.requests if path.startswith(prefix)]

    # --- serving ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> NewsSite:
        site = self

        class Handler(_Handler):
            pass

        Handler.site = site
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> NewsSite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- documents -------------------------------------------------------------------------
    def ordered(self) -> list[SiteArticle]:
        with self.lock:
            return sorted(self.articles.values(), key=lambda a: (a.published, a.slug), reverse=True)

    def rss(self) -> str:
        items = "".join(
            f"<item><title>{escape(a.title)}</title><link>{self.url}/news/{a.slug}</link>"
            f"<guid>{self.url}/news/{a.slug}</guid>"
            f"<pubDate>{a.published_rfc822}</pubDate>"
            f"<atom:updated>{_iso(a.updated)}</atom:updated>"
            f"<description>{escape(a.paragraphs[0][:140])}</description></item>"
            for a in self.ordered()
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>'
            f"<title>Loopback Times</title><link>{self.url}/</link>"
            f"<description>Test news</description>{items}</channel></rss>"
        )

    def atom(self) -> str:
        entries = "".join(
            f"<entry><title>{escape(a.title)}</title>"
            f'<link href="{self.url}/news/{a.slug}"/><id>{self.url}/news/{a.slug}</id>'
            f"<published>{a.published}T09:00:00Z</published>"
            f"<updated>{_iso(a.updated)}</updated>"
            f"<author><name>{escape(a.author)}</name></author>"
            f'<content type="html">{escape("".join(f"<p>{p}</p>" for p in a.paragraphs))}</content>'
            "</entry>"
            for a in self.ordered()
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>Loopback Times</title><id>{self.url}/</id>"
            f"<updated>2022-06-01T00:00:00Z</updated>{entries}</feed>"
        )

    def sitemap(self) -> str:
        urls = "".join(
            f"<url><loc>{self.url}/news/{a.slug}</loc><news:news><news:publication>"
            "<news:name>Loopback Times</news:name><news:language>en</news:language>"
            f"</news:publication><news:publication_date>{a.published}</news:publication_date>"
            f"<news:title>{escape(a.title)}</news:title></news:news></url>"
            for a in self.ordered()
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
            'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">'
            f"{urls}</urlset>"
        )


class _Handler(BaseHTTPRequestHandler):
    site: NewsSite
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def handle(self) -> None:
        # Clients hang up on purpose (size limit, timeout): not an error worth a traceback.
        with contextlib.suppress(ConnectionError):
            super().handle()

    def do_GET(self) -> None:
        site = self.site
        path = self.path.split("?", 1)[0]
        with site.lock:
            site.requests.append((path, dict(self.headers.items())))
        if path == "/robots.txt":
            return self._send(200, "text/plain", b"User-agent: newsdesk\nDisallow: /private/\n")
        if path == "/feed.xml":
            return self._document("application/rss+xml", site.rss().encode())
        if path == "/atom.xml":
            return self._document("application/atom+xml", site.atom().encode())
        if path == "/sitemap.xml":
            return self._document("application/xml", site.sitemap().encode())
        if path == "/sitemap-index.xml":
            index = (
                '<?xml version="1.0" encoding="UTF-8"?><sitemapindex '
                'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                f"<sitemap><loc>{site.url}/sitemap.xml</loc></sitemap></sitemapindex>"
            )
            return self._document("application/xml", index.encode())
        if path.startswith("/news/"):
            article = site.articles.get(path.removeprefix("/news/"))
            if article is None:
                return self._send(404, "text/html", b"<html><body>Not found</body></html>")
            return self._document("text/html; charset=utf-8", article.html().encode())
        if path == "/loop/a":
            return self._redirect("/loop/b")
        if path == "/loop/b":
            return self._redirect("/loop/a")
        if path == "/moved":
            slug = next(iter(site.articles))
            return self._redirect(f"/news/{slug}")
        if path == "/missing":
            return self._send(404, "text/html", b"<html><body>Not found</body></html>")
        if path == "/error":
            return self._send(500, "text/html", b"<html><body>Internal error</body></html>")
        if path == "/slow":
            time.sleep(site.slow_seconds)
            return self._send(200, "text/html", b"<html><body>late</body></html>")
        if path == "/huge":
            return self._send(200, "text/html", b"<html><body>" + b"x" * 20_000_000)
        if path == "/report.pdf":
            return self._send(200, "application/pdf", b"%PDF-1.4\n" + b"\x00\x01" * 500)
        if path == "/broken.xml":
            return self._send(200, "application/rss+xml", BROKEN_RSS)
        if path == "/paywall":
            return self._document("text/html", PAYWALL.encode())
        if path.startswith("/private/"):
            slug = next(iter(site.articles))
            return self._document("text/html", site.articles[slug].html().encode())
        return self._send(404, "text/html", b"<html><body>Not found</body></html>")

    def _document(self, content_type: str, body: bytes) -> None:
        """A page or feed with validators; 304 when the client already has this version."""
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        if self.headers.get("If-None-Match") == etag:
            return self._send(304, content_type, b"", {"ETag": etag})
        return self._send(200, content_type, body, {"ETag": etag})

    def _redirect(self, location: str) -> None:
        self._send(302, "text/html", b"", {"Location": location})

    def _send(
        self, status: int, content_type: str, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        headers = dict(headers or {})
        if body and "gzip" in self.headers.get("Accept-Encoding", "") and status == 200:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if status != 304:
            # The client may give up (size limit, timeout): expected.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)
