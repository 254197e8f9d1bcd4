"""A local SMTP sink for the alert email tests (aiosmtpd, from the test venv).

Listens on 127.0.0.1 on a free port and prints `PORT <n>` first; then one JSON line per
mail it accepts: {"from", "to", "auth", "tls", "subject", "body"} (the body decoded). Requires
AUTH (PLAIN/LOGIN) with the user and password given; with --fail-first N, answers the first N
mails with a temporary 451 (the hub must retry). Without --tls it offers no STARTTLS; with
--tls CERT KEY (PEM files) it offers STARTTLS and requires it before AUTH and MAIL.

usage: sink.py USER PASSWORD [--fail-first N] [--tls CERT KEY]
"""

import asyncio
import email
import email.policy
import json
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def main():
    user, password = sys.argv[1], sys.argv[2]
    fail_first = int(sys.argv[sys.argv.index("--fail-first") + 1]) if "--fail-first" in sys.argv else 0
    state = {"failures": 0}
    tls = None
    if "--tls" in sys.argv:
        i = sys.argv.index("--tls")
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(sys.argv[i + 1], sys.argv[i + 2])

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user and auth_data.password.decode() == password
        return AuthResult(success=ok)

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            if state["failures"] < fail_first:
                state["failures"] += 1
                print(json.dumps({"refused": True}), flush=True)
                return "451 4.3.0 try again later"
            mail = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
            print(json.dumps({
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                "auth": session.authenticated,
                "tls": session.ssl is not None,
                "subject": mail["subject"],
                "body": mail.get_content(),
            }), flush=True)
            return "250 OK"

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(
                Handler(),
                authenticator=authenticator,
                auth_required=True,
                auth_require_tls=tls is not None,
                tls_context=tls,
                require_starttls=tls is not None,
            ),
            "127.0.0.1",
            0,
        )
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        # Ends when the test closes stdin (or kills it).
        await loop.run_in_executor(None, sys.stdin.read)

    asyncio.run(serve())


if __name__ == "__main__":
    main()
