"""Validates the requests triage-bot sent to Kibana against Kibana's published OpenAPI bundles
(../shared/specs/kibana/): each recorded request is matched to its path and method, and its JSON
body is validated against the operation's requestBody schema (OpenAPI 3.0, $refs resolved).
Usage: kibana_contract_check.py SPEC_DIR REQUESTS.json
(REQUESTS.json: [{"method": "POST", "path": "/api/cases", "body": {...}}, ...])."""

import json
import os
import re
import sys

import yaml
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)
from jsonschema import RefResolver  # noqa: E402  (openapi-schema-validator 0.6 takes a resolver)
from openapi_schema_validator import OAS30Validator


def load_specs(spec_dir):
    specs = []
    for name in ("cases.bundled.json", "elastic_assistant.bundled.yaml", "endpoint_management.bundled.yaml"):
        path = os.path.join(spec_dir, name)
        with open(path) as f:
            specs.append((name, json.load(f) if name.endswith(".json") else yaml.safe_load(f)))
    return specs


def find_operation(specs, method, path):
    path = re.sub(r"^/s/[^/]+", "", path.split("?")[0])
    for name, spec in specs:
        for template, ops in spec.get("paths", {}).items():
            pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
            if re.match(pattern, path) and method.lower() in ops:
                return name, spec, template, ops[method.lower()]
    return None


def main():
    specs = load_specs(sys.argv[1])
    requests = json.load(open(sys.argv[2]))
    failures, checked = [], 0
    for r in requests:
        if r.get("body") in (None, {}) and r["method"] == "GET":
            continue
        found = find_operation(specs, r["method"], r["path"])
        if found is None:
            failures.append(f"{r['method']} {r['path']}: not in any published spec")
            continue
        name, spec, template, op = found
        content = op.get("requestBody", {}).get("content", {}).get("application/json")
        if content is None:
            continue
        schema = content["schema"]
        validator = OAS30Validator(schema, resolver=RefResolver.from_schema(spec))
        errors = sorted(validator.iter_errors(r["body"]), key=lambda e: list(e.path))
        checked += 1
        for e in errors[:5]:
            failures.append(f"{r['method']} {template} ({name}): {e.message} at {list(e.path)}")
    print(f"{checked} request bodies checked")
    if failures:
        print("\n".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
