"""Validates Slack messages (as triage-bot sent them) with slack_sdk's Block Kit models, plus the
checks those models lack: at most 50 blocks, plain_text where Slack requires it, unique
action_ids and block_ids, text limits. Modals (`views.open`, `views.update`) are validated with
slack_sdk's `View` model (title/submit/close lengths, 100 blocks, private_metadata, callback_id)
and each of their blocks with the Block models. Usage: blockkit_check.py MESSAGES.json
(a JSON array of {"method": ..., "params": {...}} as the Slack emulator recorded them)."""

import json
import sys

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

PLAIN_ONLY = {("header", "text"), ("button", "text")}


def problems_of(message):
    problems = []
    blocks = message.get("blocks") or []
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    if not message.get("text") and not blocks:
        problems.append("no text and no blocks")
    if len(message.get("text") or "") > 40000:
        problems.append("text over 40,000 characters")
    if len(blocks) > 50:
        problems.append(f"{len(blocks)} blocks (max 50)")
    action_ids, block_ids = [], []
    for i, raw in enumerate(blocks):
        where = f"blocks[{i}]"
        try:
            block = Block.parse(raw)
            if block is None:
                problems.append(f"{where}: unknown block type {raw.get('type')!r}")
                continue
            block.validate_json()
        except Exception as e:  # slack_sdk raises SlackObjectFormationError and friends
            problems.append(f"{where}: {type(e).__name__}: {e}")
        kind = raw.get("type")
        if "block_id" in raw:
            block_ids.append(raw["block_id"])
        if kind == "header" and raw["text"].get("type") != "plain_text":
            problems.append(f"{where}: header text must be plain_text")
        if kind == "section" and len(raw.get("text", {}).get("text", "")) > 3000:
            problems.append(f"{where}: section text over 3000 characters")
        for j, el in enumerate(raw.get("elements", []) if kind == "actions" else []):
            if el.get("type") == "button":
                if el["text"].get("type") != "plain_text":
                    problems.append(f"{where}.elements[{j}]: button text must be plain_text")
                if len(el["text"].get("text", "")) > 75:
                    problems.append(f"{where}.elements[{j}]: button text over 75 characters")
                if len(el.get("value", "")) > 2000:
                    problems.append(f"{where}.elements[{j}]: button value over 2000 characters")
            if "action_id" in el:
                action_ids.append(el["action_id"])
    for name, ids in (("action_id", action_ids), ("block_id", block_ids)):
        dupes = sorted({x for x in ids if ids.count(x) > 1})
        if dupes:
            problems.append(f"duplicate {name}s: {dupes}")
    return problems


def view_problems(params):
    problems = []
    raw = params.get("view")
    if isinstance(raw, str):
        raw = json.loads(raw)
    if not isinstance(raw, dict):
        return ["no view"]
    try:
        View(**raw).validate_json()
    except Exception as e:
        problems.append(f"view: {type(e).__name__}: {e}")
    block_ids = []
    for i, b in enumerate(raw.get("blocks") or []):
        try:
            block = Block.parse(b)
            if block is None:
                problems.append(f"view.blocks[{i}]: unknown block type {b.get('type')!r}")
                continue
            block.validate_json()
        except Exception as e:
            problems.append(f"view.blocks[{i}]: {type(e).__name__}: {e}")
        if "block_id" in b:
            block_ids.append(b["block_id"])
        if b.get("type") == "input":
            el = b.get("element", {})
            if el.get("type") == "plain_text_input" and len(el.get("initial_value", "")) > el.get("max_length", 3000):
                problems.append(f"view.blocks[{i}]: initial_value longer than max_length")
    dupes = sorted({x for x in block_ids if block_ids.count(x) > 1})
    if dupes:
        problems.append(f"duplicate block_ids in view: {dupes}")
    if any(b.get("type") == "input" for b in raw.get("blocks") or []) and not raw.get("submit"):
        problems.append("view with input blocks has no submit")
    return problems


def main():
    calls = json.load(open(sys.argv[1]))
    checked, failures = 0, []
    for n, call in enumerate(calls):
        if call["method"] in ("views.open", "views.update"):
            checked += 1
            for p in view_problems(call["params"]):
                failures.append(f"call {n} ({call['method']}): {p}")
            continue
        if call["method"] not in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
            continue
        checked += 1
        for p in problems_of(call["params"]):
            failures.append(f"call {n} ({call['method']}): {p}")
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print(f"{checked} messages valid")


if __name__ == "__main__":
    main()
