"""Signs requests to triage-bot's /slack/interactions with slack_sdk's SignatureVerifier (an
independent implementation of Slack's signing) and checks the app's answers: a valid one is
accepted, a tampered body and a stale timestamp are refused with 401.
Usage: slack_signature_check.py APP_INTERACTIONS_URL SIGNING_SECRET"""

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from slack_sdk.signature import SignatureVerifier


def post(url, body, timestamp, signature):
    req = urllib.request.Request(url, data=body.encode(), method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": signature,
    })
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def main():
    url, secret = sys.argv[1], sys.argv[2]
    verifier = SignatureVerifier(secret)
    # A well-formed click on an incident that does not exist: accepted (200), changes nothing.
    payload = {"type": "block_actions", "user": {"id": "U0PYTHON"}, "actions": [
        {"type": "button", "action_id": "triage_approve", "value": "no-such-incident:0000"}]}
    body = "payload=" + urllib.parse.quote(json.dumps(payload))
    now = int(time.time())
    results = {
        "valid": post(url, body, now, verifier.generate_signature(timestamp=str(now), body=body)),
        "tampered": post(url, body.replace("U0PYTHON", "U0MALLET"), now,
                         verifier.generate_signature(timestamp=str(now), body=body)),
        "stale": post(url, body, now - 600, verifier.generate_signature(timestamp=str(now - 600), body=body)),
    }
    print(results)
    expected = {"valid": 200, "tampered": 401, "stale": 401}
    if results != expected:
        print(f"expected {expected}")
        sys.exit(1)
    # And slack_sdk agrees with itself on what it produced (sanity of the test, not of the app).
    assert verifier.is_valid(body=body, timestamp=str(now),
                             signature=verifier.generate_signature(timestamp=str(now), body=body))


if __name__ == "__main__":
    main()
