#!/usr/bin/env python3
"""An independent NTLM acceptor for WinRM, to check triage-bot's NTLM client against something
other than sspi (the emulator's acceptor is sspi too, so a bug shared by both sides could hide).

pyspnego (the library behind pywinrm and pypsrp, which work against real Windows) does the
NTLM: `spnego.server(protocol="ntlm")` with credentials from NTLM_USER_FILE, and
`wrap_winrm`/`unwrap_winrm` for the HTTP-SPNEGO-session-encrypted bodies. The WS-Management side
is deliberately tiny: it answers Create, Command, Receive (one Done with canned stdout), Signal and
Delete by Action, echoing the MessageID in RelatesTo.

Usage: winrm_ntlm_peer.py DOMAIN USER PASSWORD STDOUT_TEXT
Prints "PORT <n>" once listening; serves until stdin closes. Every request is logged to stderr.
"""

import base64
import os
import re
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import spnego

BOUNDARY = b"--Encrypted Boundary"
PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
CONTENT_TYPE = f'multipart/encrypted;protocol="{PROTOCOL}";boundary="Encrypted Boundary"'
SHELL_ID = "0C1B2A39-4857-4F6E-9D8C-7B6A5F4E3D2C"
COMMAND_ID = "9D8C7B6A-5F4E-3D2C-1B0A-F9E8D7C6B5A4"
NS = (
    'xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
    'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" '
    'xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" '
    'xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"'
)
SEEN = []


def envelope(action, relates_to, body):
    return (
        f'<s:Envelope xml:lang="en-US" {NS}><s:Header><a:Action>{action}Response</a:Action>'
        f"<a:MessageID>uuid:11111111-2222-3333-4444-555555555555</a:MessageID>"
        f"<a:RelatesTo>{relates_to}</a:RelatesTo></s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def answer(soap, stdout_text):
    text = soap.decode()
    action = re.search(r"<[^>]*Action[^>]*>([^<]+)</", text).group(1)
    message_id = re.search(r"<[^>]*MessageID[^>]*>([^<]+)</", text).group(1)
    SEEN.append(action.rsplit("/", 1)[-1])
    name = action.rsplit("/", 1)[-1]
    if name == "Create":
        body = (
            "<x:ResourceCreated><a:ReferenceParameters><w:SelectorSet>"
            f'<w:Selector Name="ShellId">{SHELL_ID}</w:Selector></w:SelectorSet>'
            "</a:ReferenceParameters></x:ResourceCreated>"
        )
    elif name == "Command":
        body = f"<rsp:CommandResponse><rsp:CommandId>{COMMAND_ID}</rsp:CommandId></rsp:CommandResponse>"
    elif name == "Receive":
        data = base64.b64encode(stdout_text.encode()).decode()
        body = (
            f'<rsp:ReceiveResponse><rsp:Stream Name="stdout" CommandId="{COMMAND_ID}">{data}</rsp:Stream>'
            f'<rsp:Stream Name="stdout" CommandId="{COMMAND_ID}" End="true"></rsp:Stream>'
            f'<rsp:CommandState CommandId="{COMMAND_ID}" '
            'State="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done">'
            "<rsp:ExitCode>0</rsp:ExitCode></rsp:CommandState></rsp:ReceiveResponse>"
        )
    elif name == "Signal":
        body = "<rsp:SignalResponse/>"
    else:
        body = ""
    return envelope(action, message_id, body)


def unwrap(ctx, body):
    parts = body.split(BOUNDARY + b"\r\n")
    header, payload = parts[1], parts[2]
    length = int(re.search(rb"Length=(\d+)", header).group(1))
    payload = payload[len(b"\tContent-Type: application/octet-stream\r\n"):]
    payload = payload[: -len(BOUNDARY + b"--\r\n")]
    sig_len = int.from_bytes(payload[:4], "little")
    plain = ctx.unwrap_winrm(payload[4:4 + sig_len], payload[4 + sig_len:])
    assert len(plain) == length, "Length= does not match"
    return plain


def wrap(ctx, plain):
    res = ctx.wrap_winrm(plain)
    return (
        BOUNDARY + b"\r\n\tContent-Type: " + PROTOCOL.encode() + b"\r\n"
        + b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length="
        + str(len(plain) + res.padding_length).encode() + b"\r\n"
        + BOUNDARY + b"\r\n\tContent-Type: application/octet-stream\r\n"
        + len(res.header).to_bytes(4, "little") + res.header + res.data
        + BOUNDARY + b"--\r\n"
    )


def make_handler(stdout_text):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        ctx = None  # one NTLM context per connection (this handler instance)

        def log_message(self, fmt, *args):
            print("peer: " + fmt % args, file=sys.stderr)

        def reply(self, status, body=b"", headers=()):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Negotiate "):
                token = base64.b64decode(auth.split(" ", 1)[1])
                if token[8:12] == b"\x01\x00\x00\x00":
                    self.ctx = spnego.server(protocol="ntlm")
                try:
                    out = self.ctx.step(token)
                except Exception as exc:  # noqa: BLE001 - a failed logon is a 401
                    print(f"peer: NTLM failed: {exc}", file=sys.stderr)
                    return self.reply(401, headers=[("WWW-Authenticate", "Negotiate")])
                if not self.ctx.complete:
                    return self.reply(
                        401, headers=[("WWW-Authenticate", "Negotiate " + base64.b64encode(out).decode())]
                    )
                SEEN.append("logon")
                if not body:
                    return self.reply(200)
            if self.ctx is None or not self.ctx.complete:
                return self.reply(401, headers=[("WWW-Authenticate", "Negotiate")])
            if PROTOCOL.lower() not in self.headers.get("Content-Type", "").lower():
                return self.reply(401, headers=[("WWW-Authenticate", "Negotiate")])
            plain = unwrap(self.ctx, body)
            self.reply(200, wrap(self.ctx, answer(plain, stdout_text)), [("Content-Type", CONTENT_TYPE)])

    return Handler


def main(argv):
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    domain, user, password, stdout_text = argv[1:]
    users = tempfile.NamedTemporaryFile("w", delete=False, suffix=".ntlm")
    users.write(f"{domain}:{user}:{password}\n")
    users.close()
    os.environ["NTLM_USER_FILE"] = users.name
    server = HTTPServer(("127.0.0.1", 0), make_handler(stdout_text))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"PORT {server.server_address[1]}", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    server.shutdown()
    os.unlink(users.name)
    print("SEEN " + " ".join(SEEN), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
