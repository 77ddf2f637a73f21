"""JWT issue and verification (HS256), shared by the auth service and the backend."""

from __future__ import annotations

import hashlib
import time
import uuid
import warnings
from dataclasses import dataclass
from typing import Any

import jwt

from refstack.settings import Settings

ALGORITHM = "HS256"
PERMISSIONS = ("chat:read", "chat:write")

# A short JWT_SECRET_KEY is reported once at start; PyJWT would otherwise warn on every token.
warnings.filterwarnings("ignore", category=jwt.InsecureKeyLengthWarning)


class TokenError(Exception):
    """The token is unusable; str(exc) is a short machine-friendly reason."""


@dataclass(frozen=True)
class Claims:
    user_id: str
    email: str
    type: str
    jti: str
    sid: str
    issued_at: int
    expires_at: int


class TokenService:
    def __init__(self, settings: Settings) -> None:
        self._secret = settings.jwt_secret
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self.access_ttl = settings.access_ttl
        self.refresh_ttl = settings.refresh_ttl
        # Faults accept_wrong_issuer / accept_wrong_audience: every verification skips that
        # check (WebSocket, REST and the auth service alike), the claim must still be present.
        self._verify_iss = not settings.faults.accept_wrong_issuer
        self._verify_aud = not settings.faults.accept_wrong_audience
        # Faults accept_expired / accept_refresh_as_access: every access-token check (the
        # WebSocket, REST, /auth/validate) lets those through.
        self._access_allows_expired = settings.faults.accept_expired
        self._access_allows_refresh = settings.faults.accept_refresh_as_access

    @staticmethod
    def new_session_id() -> str:
        return str(uuid.uuid4())

    def issue_pair(self, user_id: str, email: str, sid: str) -> dict[str, Any]:
        """A login answer: an access and a refresh token bound to one session id (sid)."""
        now = int(time.time())
        return {
            "access_token": self._encode(user_id, email, "access", sid, now, self.access_ttl),
            "refresh_token": self._encode(user_id, email, "refresh", sid, now, self.refresh_ttl),
            "token_type": "Bearer",
            "expires_in": self.access_ttl,
            "refresh_expires_in": self.refresh_ttl,
            "user_id": user_id,
        }

    def _encode(self, user_id: str, email: str, kind: str, sid: str, now: int, ttl: int) -> str:
        claims = {
            "sub": user_id,
            "email": email,
            "type": kind,
            "iat": now,
            "exp": now + ttl,
            "jti": str(uuid.uuid4()),
            "sid": sid,
            "iss": self._issuer,
            "aud": self._audience,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def decode_access(self, token: str) -> Claims:
        """An access token's claims, as every endpoint that takes one checks it."""
        return self.decode(token, expect="access", allow_expired=self._access_allows_expired,
                           allow_other_type=self._access_allows_refresh)

    def decode(
        self,
        token: str,
        *,
        expect: str,
        allow_expired: bool = False,
        allow_other_type: bool = False,
    ) -> Claims:
        """Verify signature, issuer, audience, expiry and type; raise TokenError otherwise."""
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={
                    "require": ["sub", "exp", "iat", "jti", "iss", "aud"],
                    "verify_exp": not allow_expired,
                    "verify_iss": self._verify_iss,
                    "verify_aud": self._verify_aud,
                },
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token_expired") from None
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"invalid_token: {exc}") from None
        claims = _claims(payload)
        if claims.type != expect and not (allow_other_type and claims.type in ("access", "refresh")):
            raise TokenError(f"wrong_token_type: expected {expect}, got {claims.type or 'none'}")
        return claims

    @staticmethod
    def decode_unverified(token: str) -> Claims:
        """Fault ws_invalid_token only: trust whatever the token says, or invent a user."""
        try:
            payload = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            payload = {}
        claims = _claims(payload)
        if not claims.user_id:
            digest = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:16]
            claims = Claims(f"unverified-{digest}", "", "access", "", "", 0, 0)
        return claims


def _claims(payload: dict[str, Any]) -> Claims:
    def text(name: str) -> str:
        value = payload.get(name)
        return value if isinstance(value, str) else ""

    def number(name: str) -> int:
        value = payload.get(name)
        return int(value) if isinstance(value, (int, float)) else 0

    return Claims(
        user_id=text("sub"),
        email=text("email"),
        type=text("type"),
        jti=text("jti"),
        sid=text("sid"),
        issued_at=number("iat"),
        expires_at=number("exp"),
    )
