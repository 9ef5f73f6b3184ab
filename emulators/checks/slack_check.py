"""Checks the Slack emulator with the official `slack_sdk` (an independent client).

Usage: python3 slack_check.py <web api url ending in /api/> <bot token> <signing secret>
                              <timestamp> <raw body> <signature>

The Rust test seeds users U0ALICE (alice@example.com), U0BOB (bob@example.com), U0CAROL (no email)
and U0DAVE (dave@example.com) besides the bot UBOT, the user group S0SOC = [U0ALICE, U0BOB], and
queues one rate-limited response (Retry-After: 7) before running this script. The last three
arguments are a request that the Rust helper `post_interaction` sent: `slack_sdk`'s
SignatureVerifier must accept it. Exits non-zero on the first failed assertion.
"""

import json
import sys
import time
import urllib.parse
import uuid

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block, InputBlock, PlainTextInputElement, PlainTextObject
from slack_sdk.models.views import View
from slack_sdk.signature import SignatureVerifier


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def header(resp, name):
    return next((v for k, v in resp.headers.items() if k.lower() == name.lower()), None)


def expect_error(fn, code, what):
    try:
        fn()
    except SlackApiError as e:
        check(e.response["error"] == code, f"{what}: {e.response['error']}")
        return e.response
    check(False, f"{what}: expected SlackApiError {code}")


def main():
    url, token, secret, ts, body, signature = sys.argv[1:7]
    client = WebClient(token=token, base_url=url)

    # The Rust side queued one 429 before starting us.
    try:
        client.auth_test()
        check(False, "first call is rate limited")
    except SlackApiError as e:
        check(e.response.status_code == 429, "429 on a rate-limited call")
        check(header(e.response, "Retry-After") == "7", "Retry-After header carries the seconds")
        check(e.response["error"] == "ratelimited", "body error is ratelimited")

    auth = client.auth_test()
    check(auth["user_id"] == "UBOT" and auth["bot_id"] == "BBOT", "auth.test returns the bot identity")
    expect_error(lambda: WebClient(token="xoxb-wrong", base_url=url).auth_test(), "invalid_auth", "wrong token")

    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "Approval needed"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*WS-FIN-042*: run `Get-Process` ? <@U0ALICE>"}},
        {
            "type": "actions",
            "block_id": "approval:inc-1",
            "elements": [
                {"type": "button", "action_id": "approve", "value": "inc-1", "style": "primary",
                 "text": {"type": "plain_text", "text": "Yes"}},
                {"type": "button", "action_id": "deny", "value": "inc-1", "style": "danger",
                 "text": {"type": "plain_text", "text": "No"}},
            ],
        },
    ]
    for b in blocks:
        Block.parse(b).to_dict()  # slack_sdk's own validators agree the blocks are valid
    posted = client.chat_postMessage(
        channel="C0SOC", text="Approval needed for WS-FIN-042", blocks=blocks,
        metadata={"event_type": "triage_approval", "event_payload": {"incident": "inc-1"}},
    )
    parent = posted["ts"]
    check(posted["channel"] == "C0SOC" and posted["message"]["blocks"] == blocks, "chat.postMessage (JSON) echoes the message")

    # Form-encoded, with blocks as a JSON string, as older clients send it.
    reply = client.api_call(
        "chat.postMessage",
        data={"channel": "C0SOC", "thread_ts": parent, "text": "thread reply",
              "blocks": json.dumps([{"type": "section", "text": {"type": "plain_text", "text": "in thread"}}])},
    )
    check(reply["message"]["thread_ts"] == parent and float(reply["ts"]) > float(parent), "form-encoded thread reply with a later ts")

    too_long = [{"type": "actions", "elements": [{"type": "button", "action_id": "a",
                                                   "text": {"type": "plain_text", "text": "y" * 76}}]}]
    resp = expect_error(lambda: client.chat_postMessage(channel="C0SOC", text="x", blocks=too_long),
                        "invalid_blocks", "button text over 75 characters")
    check(any("json-pointer:/blocks/0/elements/0/text/text" in m for m in resp["response_metadata"]["messages"]),
          "invalid_blocks names the offending json-pointer")
    expect_error(lambda: client.chat_postMessage(channel="C0SOC"), "no_text", "neither text nor blocks")

    upd = client.chat_update(channel="C0SOC", ts=parent, text="Approved by <@U0ALICE>",
                             blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "Approved by <@U0ALICE>"}}])
    check(upd["ts"] == parent and upd["message"]["text"] == "Approved by <@U0ALICE>", "chat.update replaces the message")
    expect_error(lambda: client.chat_update(channel="C0SOC", ts="1.000001", text="x"), "message_not_found", "update of an unknown ts")

    eph = client.chat_postEphemeral(channel="C0SOC", user="U0BOB", text="Only approvers may click")
    check(bool(eph["message_ts"]), "chat.postEphemeral returns message_ts")

    members, pages, cursor = [], 0, None
    while True:
        page = client.users_list(limit=2, cursor=cursor)
        members.extend(page["members"])
        pages += 1
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break
    check(pages == 3, f"users.list paginates 5 members by 2 ({pages} pages)")
    check([m["id"] for m in members] == ["UBOT", "U0ALICE", "U0BOB", "U0CAROL", "U0DAVE"], "users.list returns every member once")
    check(next(m for m in members if m["id"] == "U0ALICE")["profile"]["email"] == "alice@example.com", "profile.email")
    check(next(m for m in members if m["id"] == "UBOT")["is_bot"], "the bot is listed with is_bot")

    found = client.users_lookupByEmail(email="bob@example.com")
    check(found["user"]["id"] == "U0BOB" and found["user"]["real_name"] == "Bob Responder", "users.lookupByEmail finds bob")
    expect_error(lambda: client.users_lookupByEmail(email="nobody@example.com"), "users_not_found", "unknown email")

    group = client.usergroups_users_list(usergroup="S0SOC")
    check(group["users"] == ["U0ALICE", "U0BOB"], "usergroups.users.list")

    history = client.conversations_history(channel="C0SOC", include_all_metadata=True)
    check([m["ts"] for m in history["messages"]] == [parent], "conversations.history lists top-level messages only")
    check(history["messages"][0]["metadata"]["event_type"] == "triage_approval", "history carries the message metadata")
    check(history["messages"][0]["reply_count"] == 1, "history shows the reply count")
    thread = client.conversations_replies(channel="C0SOC", ts=parent)
    check([m["ts"] for m in thread["messages"]] == [parent, reply["ts"]], "conversations.replies: parent then reply")

    # Signing: slack_sdk must accept what our Rust helper sent, and agree on the documented vector.
    verifier = SignatureVerifier(secret)
    check(verifier.generate_signature(timestamp=ts, body=body) == signature, "generate_signature equals the Rust signature")
    check(verifier.is_valid(body=body, timestamp=ts, signature=signature), "SignatureVerifier.is_valid accepts the request")
    check(not verifier.is_valid(body=body + "x", timestamp=ts, signature=signature), "a tampered body is rejected")
    payload = json.loads(urllib.parse.parse_qs(body)["payload"][0])
    check(payload["type"] == "block_actions" and payload["actions"][0]["action_id"] == "approve", "form body carries the payload")
    vector = SignatureVerifier("fa2c05deeef5a4077494e89f54394de0").generate_signature(timestamp="1531420618", body="test-body")
    check(vector == "v0=baa91ef62d346e56607bbdd278a8acd570b91226854f15a382f43d33be42f666", "documented test vector")

    # Modals: the emulator's views.open / views.update as slack_sdk calls them, with a view built
    # from slack_sdk's own models (so its idea of the wire format is the one checked).
    trigger = f"{int(time.time() * 1000)}.1234567890123.{uuid.uuid4().hex}"
    view = View(
        type="modal",
        callback_id="triage_edit_proposal",
        private_metadata="inc-1:abc",
        title=PlainTextObject(text="Edit proposed commands"),
        submit=PlainTextObject(text="Approve edited list"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            InputBlock(
                block_id="cmd:1:text",
                label=PlainTextObject(text="1. investigation"),
                element=PlainTextInputElement(action_id="text", multiline=True, initial_value="Get-Process"),
            )
        ],
    )
    opened = client.views_open(trigger_id=trigger, view=view)
    check(opened["view"]["id"].startswith("V") and opened["view"]["hash"], "views.open returns the view id and hash")
    check(opened["view"]["private_metadata"] == "inc-1:abc", "views.open echoes private_metadata")
    expect_error(lambda: client.views_open(trigger_id=trigger, view=view), "exchanged_trigger_id", "a trigger opens one modal")
    expect_error(lambda: client.views_open(trigger_id="1000.1.old", view=view), "expired_trigger_id", "an old trigger has expired")
    updated = client.views_update(view_id=opened["view"]["id"], hash=opened["view"]["hash"], view=view)
    check(updated["view"]["hash"] != opened["view"]["hash"], "views.update gives a new hash")
    expect_error(
        lambda: client.views_update(view_id=opened["view"]["id"], hash=opened["view"]["hash"], view=view),
        "hash_conflict",
        "a stale hash is refused",
    )
    fresh = f"{int(time.time() * 1000)}.1234567890123.{uuid.uuid4().hex}"
    too_long = {"type": "modal", "title": {"type": "plain_text", "text": "x" * 25}, "blocks": []}
    expect_error(lambda: client.views_open(trigger_id=fresh, view=too_long), "invalid_arguments", "a 25-character title")

    print("slack_check: all good")


if __name__ == "__main__":
    main()
