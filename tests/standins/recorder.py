#!/usr/bin/env python3
"""A recording stand-in for `snow` and `docker` (linked under those names): it logs its argv and stdin
as a JSON line to $STANDIN_LOG and answers with canned output, as a real account would.

It stands in only for what can't run here: an account's registry host and ingress, its connections.
(The whole deploy path runs for real against the local SPCS: tests/test_local_spcs.py.)
$STANDIN_NO_CONNECTION=1 lists no connection; $STANDIN_FAIL_ON makes any call whose argv contains that
text exit 3.
"""

import json
import os
import sys

tool, args = os.path.basename(sys.argv[0]), sys.argv[1:]
stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
with open(os.environ["STANDIN_LOG"], "a") as log:
    log.write(json.dumps({"argv": [tool, *args], "stdin": stdin}) + "\n")

if os.getenv("STANDIN_FAIL_ON") and os.environ["STANDIN_FAIL_ON"] in " ".join(args):
    print(f"{tool}: simulated failure", file=sys.stderr)
    sys.exit(3)
if tool == "docker":
    sys.exit(0)
if args[:2] == ["connection", "list"]:
    print("[]" if os.getenv("STANDIN_NO_CONNECTION") else '[{"connection_name": "tutorial", "is_default": true}]')
elif args[:3] == ["spcs", "image-repository", "url"]:
    print(f"myorg-myaccount.registry.snowflakecomputing.com/tutorial_db/data_schema/{args[3]}")
elif args[:2] == ["spcs", "image-registry"]:
    print("Login Succeeded")
elif args[:3] == ["spcs", "service", "list-endpoints"]:
    print('[{"name": "echoendpoint", "port": 8000, "ingress_url": "abcd-myorg-myaccount.snowflakecomputing.app"}]')
