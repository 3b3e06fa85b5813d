"""An app behind vestibule, in Python: it verifies the signed identity
assertion on every request with PyJWT (and cryptography) and answers with
the identity it carries (401 without a valid one).

    pip install 'pyjwt[crypto]'     # or: apt install python3-jwt python3-cryptography
    JWKS_URL=https://sso.example.com/.vestibule/jwks.json \\
    ISSUER=https://sso.example.com AUDIENCE=app.example.com PORT=8080 \\
    python3 verify.py
"""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt

JWKS_URL = os.environ["JWKS_URL"]
ISSUER = os.environ["ISSUER"]
AUDIENCE = os.environ["AUDIENCE"]
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = int(os.environ.get("PORT", "8080"))

# The gateway's key set: fetched on first use and kept for 10 minutes; a
# token naming a key not in it makes PyJWT fetch the set again, which is
# how a new key is picked up.
keys = jwt.PyJWKClient(JWKS_URL, cache_jwk_set=True, lifespan=600)


def verify_assertion(token: str) -> dict:
    """The assertion's claims, or a jwt.PyJWTError saying why it is refused."""
    # Explicit typing (RFC 8725 §3.11), which PyJWT leaves to the caller.
    # Media types compare case-insensitively, "application/" may be left
    # out (RFC 7515 §4.1.9).
    typ = str(jwt.get_unverified_header(token).get("typ", "")).lower()
    if typ.removeprefix("application/") != "vestibule-id+jwt":
        raise jwt.InvalidTokenError("not a vestibule assertion (typ)")
    key = keys.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        key.key,
        # The gateway's `[keys] algorithm`, never what the token says
        # (RFC 8725 §3.1): this refuses `none` and HS256.
        algorithms=["ES256"],
        # Whose it is, and for whom (RFC 8725 §3.8, §3.9).
        issuer=ISSUER,
        audience=AUDIENCE,
        options={"require": ["iss", "aud", "sub", "iat", "nbf", "exp"]},
        # Seconds of clock skew allowed on `exp` and `nbf`: at most 60.
        leeway=30,
    )


class App(BaseHTTPRequestHandler):
    def do_GET(self):
        tokens = self.headers.get_all("X-Vestibule-Assertion") or []
        if len(tokens) != 1:
            return self.reply(401, {"error": "no identity assertion, or several"})
        try:
            claims = verify_assertion(tokens[0])
        except jwt.PyJWTError as e:
            return self.reply(401, {"error": f"assertion refused: {e}"})
        fields = ("sub", "preferred_username", "email", "name", "groups",
                  "auth_method", "device_id")
        self.reply(200, {f: claims.get(f) for f in fields})

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    server = ThreadingHTTPServer((HOST, PORT), App)
    print(f"listening on http://{HOST}:{PORT}", flush=True)
    server.serve_forever()
