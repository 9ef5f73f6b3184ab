#!/usr/bin/env python3
"""Checks the WinRM host emulator with pywinrm, the independent real client.

pywinrm (PyPI, pinned in requirements.txt) works against real Windows hosts; if it works
against the emulator too, the emulator's wire format is not just agreeing with our own Rust
client. Run by emulators/tests/peers/winrm_pywinrm.rs, which starts and seeds the emulator.

Usage:
    pywinrm_check.py URL USERNAME PASSWORD CASES_JSON [TRANSPORT]

TRANSPORT is pywinrm's transport name: "basic" (the default; plaintext over HTTP, the emulator
in Basic + AllowUnencrypted mode) or "ntlm" (requests_ntlm/pyspnego NTLM over HTTP with message
encryption, pywinrm's message_encryption="auto"; the emulator configured like a stock host).

CASES_JSON is a JSON list of cases:
    {"kind": "ps", "script": "...", "stdout": "...", "exit": 0, "stderr_contains": "..."}
        Session.run_ps (powershell -encodedcommand, codepage 437, pywinrm's own To address);
        stderr_contains is checked against pywinrm's CLIXML-cleaned stderr.
    {"kind": "cmd", "command": "ipconfig", "args": ["/all"], "stdout": "...", "exit": 0}
        Session.run_cmd (rsp:Command plus rsp:Arguments).
    {"kind": "stdin", "command": "findstr x", "input": "..."}
        Protocol level: open_shell, run_command, send_command_input (End=true),
        get_command_output, cleanup_command, close_shell. The caller checks what arrived.
    {"kind": "bad_auth"}
        A wrong password must raise InvalidCredentialsError.
    {"kind": "bad_shell"}
        A Receive on an unknown ShellId must raise WSManFaultError with WSManFault code
        2150858843 (w:InvalidSelectors), parsed by pywinrm.

Exits 0 when every case passed, 1 when one failed, 2 on bad usage, 3 when pywinrm is missing.
"""

import json
import sys
import traceback
from importlib.metadata import version

try:
    import winrm
    from winrm.exceptions import InvalidCredentialsError, WSManFaultError
    from winrm.protocol import Protocol
except ImportError as exc:  # pragma: no cover - reported to the Rust test
    print(
        f"pywinrm is not installed ({exc}); run: pip install -r emulators/checks/requirements.txt",
        file=sys.stderr,
    )
    sys.exit(3)


def text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def check_ps(session, case):
    rs = session.run_ps(case["script"])
    assert rs.status_code == case.get("exit", 0), f"exit {rs.status_code} != {case.get('exit', 0)}"
    if "stdout" in case:
        assert text(rs.std_out) == case["stdout"], f"stdout {rs.std_out!r} != {case['stdout']!r}"
    if "stderr_contains" in case:
        assert case["stderr_contains"] in text(rs.std_err), f"stderr {rs.std_err!r}"
        assert not rs.std_err.startswith(b"#< CLIXML"), "pywinrm could not clean the CLIXML"


def check_cmd(session, case):
    rs = session.run_cmd(case["command"], case.get("args", []))
    assert rs.status_code == case.get("exit", 0), f"exit {rs.status_code} != {case.get('exit', 0)}"
    if "stdout" in case:
        assert text(rs.std_out) == case["stdout"], f"stdout {rs.std_out!r} != {case['stdout']!r}"


TRANSPORT = "basic"


def protocol(url, user, password):
    return Protocol(url, transport=TRANSPORT, username=user, password=password)


def check_stdin(url, user, password, case):
    p = protocol(url, user, password)
    shell_id = p.open_shell()
    command_id = p.run_command(shell_id, case["command"])
    p.send_command_input(shell_id, command_id, case["input"].encode("utf-8"), end=True)
    _out, _err, code = p.get_command_output(shell_id, command_id)
    p.cleanup_command(shell_id, command_id)
    p.close_shell(shell_id)
    assert code == case.get("exit", 0), f"exit {code}"


def check_bad_auth(url, user):
    session = winrm.Session(url, auth=(user, "definitely-not-the-password"), transport=TRANSPORT)
    try:
        session.run_cmd("hostname")
    except InvalidCredentialsError:
        return
    raise AssertionError("a wrong password was accepted")


def check_bad_shell(url, user, password):
    p = protocol(url, user, password)
    try:
        p.get_command_output_raw("00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000001")
    except WSManFaultError as exc:
        assert exc.code == 500, f"HTTP {exc.code}"
        assert exc.wsman_fault_code == 2150858843, f"wsman code {exc.wsman_fault_code}"
        assert exc.fault_subcode == "w:InvalidSelectors", f"subcode {exc.fault_subcode}"
        return
    raise AssertionError("an unknown ShellId was accepted")


def main(argv):
    global TRANSPORT
    if len(argv) not in (5, 6):
        print(__doc__, file=sys.stderr)
        return 2
    url, user, password, cases_json = argv[1:5]
    if len(argv) == 6:
        TRANSPORT = argv[5]
    cases = json.loads(cases_json)
    session = winrm.Session(url, auth=(user, password), transport=TRANSPORT)
    passed = failed = 0
    for i, case in enumerate(cases):
        kind = case["kind"]
        label = f"case {i} ({kind}: {case.get('script') or case.get('command') or ''})"
        try:
            if kind == "ps":
                check_ps(session, case)
            elif kind == "cmd":
                check_cmd(session, case)
            elif kind == "stdin":
                check_stdin(url, user, password, case)
            elif kind == "bad_auth":
                check_bad_auth(url, user)
            elif kind == "bad_shell":
                check_bad_shell(url, user, password)
            else:
                raise AssertionError(f"unknown case kind {kind!r}")
        except Exception:  # noqa: BLE001 - report every failure, keep going
            failed += 1
            print(f"FAIL {label}", file=sys.stderr)
            traceback.print_exc()
        else:
            passed += 1
            print(f"ok   {label}")
    # Deliberately not the "N passed, N failed" shape: this is one test's detail, not a suite.
    print(
        f"pywinrm {version('pywinrm')} ({TRANSPORT}) check done: {passed} cases ok, {failed} failing"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
