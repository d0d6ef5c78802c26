#!/usr/bin/env python3
"""A Twilio-compatible REST server for sauti's tests, on loopback.

It speaks enough of Twilio's API for the Twilio adapter: it checks HTTP Basic auth,
answers POST /2010-04-01/Accounts/{sid}/Messages.json the way Twilio does, and then posts
status callbacks ("sent", then "delivered") to the message's StatusCallback, signed with
the official helper (twilio.request_validator.RequestValidator), so the signature tests
check sauti against Twilio's own code rather than against itself.

It also answers POST /2010-04-01/Accounts/{sid}/Calls.json and then plays the callee:
after the call's status callbacks "initiated" and "ringing" it "answers" — fetches the
TwiML from the call's Url (a signed POST, as Twilio does), posts the status callback
"in-progress", and when the TwiML has a <Gather>, posts Digits (the last numDigits digits
of the number called) to its action URL, signed — then posts "completed" with
CallDuration 7. Every callback and TwiML request is signed with RequestValidator.

Special "To" numbers (after Twilio's magic test numbers):
  +15005550001  400 {"code": 21211, ...} (invalid number)
  +15005550429  429 with Retry-After: 1
  +15005550500  500
  +15005550002  SMS accepted; callbacks "sent", then "undelivered" with ErrorCode 30003
  +15005550003  call accepted; "ringing", then "busy"
  +15005550004  call accepted; "ringing", then "no-answer"

GET /_requests returns every API request received (method, path, form), for assertions;
GET /_calls what each call did (sid, to, the TwiML it got, the answers to its requests).

Usage: fake_twilio.py [--port N] [--account-sid AC…] [--auth-token T]
(or FAKE_TWILIO_PORT, FAKE_TWILIO_ACCOUNT_SID, FAKE_TWILIO_AUTH_TOKEN). Port 0 picks a free
port; the line "listening on 127.0.0.1:PORT" is printed once bound.
"""

import argparse
import base64
import json
import os
import re
import secrets
import sys
import threading
import time
import urllib.parse
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.etree import ElementTree

from twilio.request_validator import RequestValidator

# Seconds between the API answer and each status callback.
CALLBACK_DELAY = float(os.environ.get("FAKE_TWILIO_CALLBACK_DELAY", "0.2"))


class State:
    def __init__(self, account_sid, auth_token):
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.validator = RequestValidator(auth_token)
        self.lock = threading.Lock()
        self.requests = []
        self.calls = []

    def record_call(self, entry):
        with self.lock:
            self.calls.append(entry)

    def calls_snapshot(self):
        with self.lock:
            return [dict(c) for c in self.calls]

    def record(self, entry):
        with self.lock:
            self.requests.append(entry)

    def snapshot(self):
        with self.lock:
            return list(self.requests)


def twilio_error(code, message, status):
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}


def post_callback(state, url, params):
    """POST a form-encoded callback signed the way Twilio signs it: (HTTP status, body)."""
    signature = state.validator.compute_signature(url, params)
    data = urllib.parse.urlencode(params).encode()
    req = urllib.request.Request(
        url,
        data=data,
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        print(f"callback to {url} answered {e.code}", file=sys.stderr, flush=True)
        return e.code, e.read().decode()
    except Exception as e:  # the test reports what it did not receive
        print(f"callback to {url} failed: {e}", file=sys.stderr, flush=True)
        return None, str(e)


def message_callbacks(state, message, statuses):
    url = message["status_callback"]
    if not url:
        return
    for status, error_code in statuses:
        time.sleep(CALLBACK_DELAY)
        params = {
            "AccountSid": state.account_sid,
            "ApiVersion": "2010-04-01",
            "MessageSid": message["sid"],
            "SmsSid": message["sid"],
            "MessageStatus": status,
            "SmsStatus": status,
            "From": message["from"] or "",
            "To": message["to"],
        }
        if message.get("messaging_service_sid"):
            params["MessagingServiceSid"] = message["messaging_service_sid"]
        if error_code:
            params["ErrorCode"] = str(error_code)
        post_callback(state, url, params)


def gsm_segments(body):
    # Good enough for a fake: GSM-7 if ASCII, else UCS-2 (Twilio computes it properly).
    if all(ord(c) < 128 for c in body):
        single, part = 160, 153
        units = len(body)
    else:
        single, part = 70, 67
        units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= single else -(-units // part)


def create_message(state, form, match):
    """POST Messages.json: (status, json, headers)."""
    to = form.get("To", "")
    sender = form.get("From")
    mss = form.get("MessagingServiceSid")
    body = form.get("Body", "")
    if not to:
        return 400, twilio_error(21604, "A 'To' phone number is required.", 400), {}
    if not sender and not mss:
        return 400, twilio_error(21603, "A 'From' phone number is required.", 400), {}
    if to == "+15005550001":
        return 400, twilio_error(21211, "The 'To' number is not a valid phone number.", 400), {}
    if to == "+15005550429":
        return 429, twilio_error(20429, "Too Many Requests", 429), {"Retry-After": "1"}
    if to == "+15005550500":
        return 500, twilio_error(20500, "Internal Server Error", 500), {}
    sid = "SM" + secrets.token_hex(16)
    message = {
        "sid": sid,
        "account_sid": state.account_sid,
        "to": to,
        "from": sender,
        "messaging_service_sid": mss,
        "body": body,
        "status": "queued",
        "num_segments": str(gsm_segments(body)),
        "num_media": "0",
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "price": None,
        "price_unit": "USD",
        "error_code": None,
        "error_message": None,
        "uri": f"/2010-04-01/Accounts/{state.account_sid}/Messages/{sid}.json",
        "status_callback": form.get("StatusCallback"),
    }
    if to == "+15005550002":
        statuses = [("sent", None), ("undelivered", 30003)]
    else:
        statuses = [("sent", None), ("delivered", None)]
    threading.Thread(target=message_callbacks, args=(state, message, statuses), daemon=True).start()
    answer = {k: v for k, v in message.items() if k != "status_callback"}
    return 201, answer, {}


def call_params(state, call, status, **extra):
    params = {
        "AccountSid": state.account_sid,
        "ApiVersion": "2010-04-01",
        "CallSid": call["sid"],
        "CallStatus": status,
        "Direction": "outbound-api",
        "From": call["from"],
        "To": call["to"],
    }
    params.update({k: str(v) for k, v in extra.items()})
    return params


def play_call(state, call, form):
    """What the callee does, with the callbacks Twilio would make about it."""
    entry = {"sid": call["sid"], "to": call["to"], "events": []}
    callback = form.get("StatusCallback")

    def status(s, **extra):
        time.sleep(CALLBACK_DELAY)
        if callback:
            code, _ = post_callback(state, callback, call_params(state, call, s, **extra))
            entry["events"].append({"status": s, "answer": code})

    status("initiated")
    status("ringing")
    if call["to"] == "+15005550003":
        status("busy")
    elif call["to"] == "+15005550004":
        status("no-answer")
    else:
        code, twiml = post_callback(state, form["Url"], call_params(state, call, "in-progress"))
        entry["twiml_status"], entry["twiml"] = code, twiml
        status("in-progress")
        gather = None
        if code == 200:
            try:
                gather = ElementTree.fromstring(twiml).find("Gather")
            except ElementTree.ParseError as e:
                print(f"unreadable TwiML: {e}", file=sys.stderr, flush=True)
        if gather is not None:
            n = int(gather.get("numDigits", "1"))
            digits = re.sub(r"\D", "", call["to"])[-n:]
            code, answer = post_callback(
                state, gather.get("action"), call_params(state, call, "in-progress", Digits=digits)
            )
            entry["gather_status"], entry["gather_answer"], entry["digits"] = code, answer, digits
        status("completed", CallDuration=7)
    state.record_call(entry)


def create_call(state, form, match):
    """POST Calls.json: (status, json, headers)."""
    to = form.get("To", "")
    sender = form.get("From")
    if not to:
        return 400, twilio_error(21201, "No 'To' number is specified", 400), {}
    if not sender:
        return 400, twilio_error(21213, "No 'From' number is specified", 400), {}
    if not form.get("Url"):
        return 400, twilio_error(21205, "Url parameter is required.", 400), {}
    if to == "+15005550001":
        return 400, twilio_error(21211, "The 'To' number is not a valid phone number.", 400), {}
    if to == "+15005550429":
        return 429, twilio_error(20429, "Too Many Requests", 429), {"Retry-After": "1"}
    if to == "+15005550500":
        return 500, twilio_error(20500, "Internal Server Error", 500), {}
    sid = "CA" + secrets.token_hex(16)
    call = {
        "sid": sid,
        "account_id": state.account_sid,
        "to": to,
        "from": sender,
        "status": "queued",
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "duration": None,
        "price": None,
        "uri": f"/2010-04-01/Accounts/{state.account_sid}/Calls/{sid}.json",
    }
    threading.Thread(target=play_call, args=(state, call, form), daemon=True).start()
    return 201, call, {}


# (method, path pattern, handler(state, form, match)).
ROUTES = [
    ("POST", re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json$"), create_message),
    ("POST", re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Calls\.json$"), create_call),
]


class Handler(BaseHTTPRequestHandler):
    server_version = "fake-twilio/1"

    def log_message(self, fmt, *args):
        if os.environ.get("FAKE_TWILIO_VERBOSE"):
            super().log_message(fmt, *args)

    def send_json(self, status, payload, headers=None):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def authorized(self, state, account_sid):
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except Exception:
            return False
        return user == state.account_sid == account_sid and password == state.auth_token

    def handle_any(self, method):
        state = self.server.state
        path = urllib.parse.urlsplit(self.path).path
        if method == "GET" and path == "/_requests":
            return self.send_json(200, state.snapshot())
        if method == "GET" and path == "/_calls":
            return self.send_json(200, state.calls_snapshot())
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        pairs = urllib.parse.parse_qsl(raw, keep_blank_values=True)
        form = dict(pairs)
        for route_method, pattern, handler in ROUTES:
            match = pattern.match(path)
            if match and route_method == method:
                state.record({"method": method, "path": path, "form": form, "pairs": pairs})
                if not self.authorized(state, match.group("sid")):
                    return self.send_json(
                        401, twilio_error(20003, "Authentication Error - invalid username", 401)
                    )
                try:
                    status, payload, headers = handler(state, form, match)
                except Exception as e:  # answer like a broken server rather than hang up
                    print(f"handler failed: {e!r}", file=sys.stderr, flush=True)
                    return self.send_json(500, twilio_error(20500, repr(e), 500))
                return self.send_json(status, payload, headers)
        self.send_json(404, twilio_error(20404, "The requested resource was not found", 404))

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=int(os.environ.get("FAKE_TWILIO_PORT", "0")))
    parser.add_argument("--account-sid", default=os.environ.get("FAKE_TWILIO_ACCOUNT_SID", "AC" + "0" * 32))
    parser.add_argument("--auth-token", default=os.environ.get("FAKE_TWILIO_AUTH_TOKEN", "secret"))
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.state = State(args.account_sid, args.auth_token)
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
