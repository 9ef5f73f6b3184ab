#!/usr/bin/env python3
"""Prints recorded WinRM exchanges as JSON, for replaying the responses through triage-bot's
WS-Management parsers (tests/execute_winrm_fixtures.rs).

Two sources, both fetched from PyPI by pip and never committed to this repository:
  * pywinrm's test fixtures: the request/response string pairs in winrm/tests/conftest.py of
    the installed pywinrm (pinned in requirements.txt; the wheel ships its tests). Read with
    `ast`, not imported (importing needs pytest and mock).
  * pypsrp's recorded real-Windows traffic: tests/tests_pypsrp/responses/test_winrs_*.yml in
    the pypsrp source distribution, downloaded with
    `pip download --no-deps --no-binary :all: pypsrp==PYPSRP_VERSION` into OUT_DIR once.

Usage: winrm_fixtures.py OUT_DIR
Output: {"pywinrm": "<version>", "pypsrp": "<version>",
         "fixtures": [{"source": ..., "name": ..., "request": ..., "response": ...}, ...]}
"""

import ast
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
from importlib.metadata import version

PYPSRP_VERSION = "0.9.1"
PYYAML_VERSION = "6.0.3"

# pywinrm's conftest pairs responses with requests by name.
PYWINRM_PAIRS = {
    "open_shell_response": "open_shell_request",
    "close_shell_response": "close_shell_request",
    "run_cmd_ps_response": "run_cmd_with_args_request",
    "cleanup_cmd_response": "cleanup_cmd_request",
    "get_cmd_output_response": "get_cmd_ps_output_request",
    "get_ps_output_response": "get_cmd_ps_output_request",
    "run_cmd_req_input_response": "run_cmd_req_input",
    "run_cmd_send_input_response": "run_cmd_send_input",
    "run_cmd_send_input_get_output_response": "run_cmd_send_input_get_output",
    "stdin_cmd_cleanup_response": "stdin_cmd_cleanup",
}


def pip(*args):
    out = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"pip {' '.join(args)} failed:\n{out.stderr}")


def load_yaml(out_dir):
    try:
        import yaml  # noqa: PLC0415
    except ImportError:
        target = os.path.join(out_dir, "pydeps")
        pip("install", "--quiet", "--target", target, f"PyYAML=={PYYAML_VERSION}")
        sys.path.insert(0, target)
        import yaml  # noqa: PLC0415
    return yaml


def pywinrm_fixtures():
    spec = importlib.util.find_spec("winrm")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pywinrm is not installed")
    conftest = os.path.join(list(spec.submodule_search_locations)[0], "tests", "conftest.py")
    tree = ast.parse(open(conftest, encoding="utf-8").read())
    strings = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            # The CommandId templates take "%s" (pywinrm fills in 3 for the fixtures).
            strings[node.targets[0].id] = node.value.value.replace("%s", "3")
    out = []
    for resp, req in PYWINRM_PAIRS.items():
        if resp not in strings or req not in strings:
            raise SystemExit(f"pywinrm's conftest.py has no {resp}/{req}")
        out.append(
            {"source": "pywinrm:winrm/tests/conftest.py", "name": resp,
             "request": strings[req], "response": strings[resp]}
        )
    return out


def pypsrp_fixtures(out_dir):
    sdist = os.path.join(out_dir, f"pypsrp-{PYPSRP_VERSION}.tar.gz")
    if not os.path.exists(sdist):
        pip("download", "--quiet", "--no-deps", "--no-binary", ":all:",
            f"pypsrp=={PYPSRP_VERSION}", "-d", out_dir)
    yaml = load_yaml(out_dir)
    out = []
    prefix = f"pypsrp-{PYPSRP_VERSION}/tests/tests_pypsrp/responses/"
    with tarfile.open(sdist) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            name = member.name
            if not (name.startswith(prefix + "test_winrs_") and name.endswith(".yml")):
                continue
            data = yaml.safe_load(tar.extractfile(member).read())
            for i, msg in enumerate(data["messages"]):
                out.append(
                    {"source": f"pypsrp:{name[len(prefix):]}", "name": f"message {i}",
                     "request": msg["request"], "response": msg["response"]}
                )
    return out


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = argv[1]
    os.makedirs(out_dir, exist_ok=True)
    fixtures = pywinrm_fixtures() + pypsrp_fixtures(out_dir)
    json.dump(
        {"pywinrm": version("pywinrm"), "pypsrp": PYPSRP_VERSION, "fixtures": fixtures},
        sys.stdout,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
