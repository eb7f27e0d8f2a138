"""What the API needs beyond the shared settings: the connect flow's URLs.

Read from ``GOOGLE_OAUTH_AUTH_URI``, ``PUBLIC_BASE_URL`` and ``CONNECT_RETURN_URL``;
tests pass an :class:`ApiConfig` of their own to :func:`delightbridge.api.app.create_app`.

Without ``PUBLIC_BASE_URL`` the request's own origin is used only when its host is a
loopback name (the local demo): a Host header must not choose the OAuth redirect URI.
Under any other name the connect flow is refused and other links are relative.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web
from yarl import URL

from delightbridge.core.settings import Settings

#: Google's consent screen (OAuth 2.0 authorization endpoint for web server apps).
GOOGLE_AUTH_URI = "https://accounts.google.com/o/oauth2/v2/auth"
CALLBACK_PATH = "/api/services/oauth/callback"
RESULT_PATH = "/api/services/oauth/result"
#: Hosts whose Host header is trusted to name the API's origin without PUBLIC_BASE_URL.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True, slots=True)
class ApiConfig:
    #: Where the connect endpoint sends the browser to ask for consent.
    auth_uri: str = GOOGLE_AUTH_URI
    #: The API's public origin (``https://sync.example.com``), as browsers and Google
    #: reach it; None: the origin of the request being answered.
    public_base_url: str | None = None
    #: Where the OAuth callback sends the browser afterwards (the web app's page);
    #: None: the API's own result page (``/api/services/oauth/result``).
    connect_return_url: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiConfig:
        def text(name: str) -> str | None:
            value = getattr(settings, name, None)
            return value.rstrip("/") if isinstance(value, str) and value else None

        return cls(
            auth_uri=text("google_oauth_auth_uri") or GOOGLE_AUTH_URI,
            public_base_url=text("public_base_url"),
            connect_return_url=getattr(settings, "connect_return_url", None) or None,
        )

    def trusts_origin(self, request: web.Request) -> bool:
        """Whether the API's origin is known: configured, or a loopback request's own."""
        return bool(self.public_base_url) or request.url.host in LOOPBACK_HOSTS

    def base_url(self, request: web.Request) -> URL:
        """The API's public origin (and path prefix, if any); a relative URL (no
        origin) when it is not configured and the request's host is not loopback."""
        if self.public_base_url:
            return URL(self.public_base_url)
        if self.trusts_origin(request):
            return request.url.origin()
        return URL("/")

    def url(self, request: web.Request, path: str) -> URL:
        base = self.base_url(request)
        return base.with_path(base.path.rstrip("/") + path, encoded=True)

    def callback_url(self, request: web.Request) -> str:
        """The redirect URI registered with Google for the OAuth callback."""
        return str(self.url(request, CALLBACK_PATH))

    def connect_url(self, request: web.Request, service_id: str) -> str:
        """The connect endpoint of a service (the id encoded as one path segment)."""
        return str(self.url(request, f"/api/services/{quote(service_id, safe='')}/connect"))

    def return_url(self, request: web.Request) -> URL:
        if self.connect_return_url:
            return URL(self.connect_return_url)
        return self.url(request, RESULT_PATH)
