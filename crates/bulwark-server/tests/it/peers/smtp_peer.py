"""A real SMTP server (aiosmtpd) for Bulwark's mail tests.

usage: smtp_peer.py PORT OUT_DIR plain
       smtp_peer.py PORT OUT_DIR starttls CERT KEY USER PASSWORD

Each message received is written to OUT_DIR/<n>.eml. With `starttls`, STARTTLS is required
before AUTH and MAIL, and AUTH (PLAIN/LOGIN) accepts only USER/PASSWORD. Prints `ready` once
listening; runs until its standard input closes.
"""
import os
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Store:
    def __init__(self, out):
        self.out = out
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        path = os.path.join(self.out, f"{self.count}.eml")
        with open(path + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(path + ".tmp", path)
        return "250 Message accepted for delivery"


def main():
    port, out, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    options = {}
    if mode == "starttls":
        cert, key, user, password = sys.argv[4:8]
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)

        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login == user.encode()
                and auth_data.password == password.encode()
            )
            return AuthResult(success=ok, handled=False)

        options = dict(
            tls_context=context,
            require_starttls=True,
            authenticator=authenticate,
            auth_required=True,
            auth_require_tls=True,
        )
    controller = Controller(Store(out), hostname="127.0.0.1", port=port, **options)
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
