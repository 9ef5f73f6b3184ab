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


def drop_discriminators(node):
    """The connectors bundle's `discriminator`s have no `mapping`, and its values (`.index`) are
    not schema names, so a validator that follows them fails to resolve `#/components/schemas/.index`.
    Without them the `oneOf` still picks exactly one schema: each has its own `connector_type_id` enum."""
    if isinstance(node, dict):
        node.pop("discriminator", None)
        for v in node.values():
            drop_discriminators(v)
    elif isinstance(node, list):
        for v in node:
            drop_discriminators(v)
    return node


def load_specs(spec_dir):
    specs = []
    for name in ("cases.bundled.json", "elastic_assistant.bundled.yaml", "endpoint_management.bundled.yaml",
                 "connectors.bundled.json"):
        path = os.path.join(spec_dir, name)
        with open(path) as f:
            spec = json.load(f) if name.endswith(".json") else yaml.safe_load(f)
            if name == "connectors.bundled.json":
                spec = drop_discriminators(spec)
            specs.append((name, spec))
    return specs


def find_operation(specs, method, path):
    path = path.split("?")[0]
    # Most bundles list paths without the space; the connectors bundle puts it in every path
    # (`/s/{spaceId}/api/...`), the default space included.
    bare = re.sub(r"^/s/[^/]+", "", path)
    spaced = path if path.startswith("/s/") else "/s/default" + path
    for name, spec in specs:
        for template, ops in spec.get("paths", {}).items():
            pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
            candidate = spaced if template.startswith("/s/{") else bare
            if re.match(pattern, candidate) and method.lower() in ops:
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
