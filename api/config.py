"""What the API needs beyond the shared settings: the connect flow's URLs.

``GOOGLE_OAUTH_AUTH_URI``, ``PUBLIC_BASE_URL`` and ``CONNECT_RETURN_URL`` are proposed
for :class:`~delightbridge.settings.Settings` (see the API issue's report); until it
declares them they are read from it when present, else they take their defaults, so
the API works on either side of that change. Tests pass an :class:`ApiConfig` of
their own to :func:`api.app.create_app`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web
from yarl import URL

from delightbridge.settings import Settings

#: Google's consent screen (OAuth 2.0 authorization endpoint for web server apps).
GOOGLE_AUTH_URI = "https://accounts.google.com/o/oauth2/v2/auth"
CALLBACK_PATH = "/api/services/oauth/callback"
RESULT_PATH = "/api/services/oauth/result"


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

    def base_url(self, request: web.Request) -> URL:
        """The API's public origin (and path prefix, if any)."""
        if self.public_base_url:
            return URL(self.public_base_url)
        return request.url.origin()

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
