#!/usr/bin/env python3
"""A recording stand-in for `snow` and `docker` (linked under those names): it logs its argv and stdin
as a JSON line to $STANDIN_LOG and answers with canned output, as a real account would.

$STANDIN_FAILED_JOB names a job that ends FAILED; $STANDIN_NO_CONNECTION=1 lists no connection;
$STANDIN_FAIL_ON makes any call whose argv contains that text exit 3.
"""

import json
import os
import sys

tool, args = os.path.basename(sys.argv[0]), sys.argv[1:]
stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
with open(os.environ["STANDIN_LOG"], "a") as log:
    log.write(json.dumps({"argv": [tool, *args], "stdin": stdin}) + "\n")

command = " ".join(args)
failed_job = os.getenv("STANDIN_FAILED_JOB", "")
if os.getenv("STANDIN_FAIL_ON") and os.environ["STANDIN_FAIL_ON"] in command:
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
elif args[:3] == ["spcs", "service", "logs"]:
    if args[3] == "tutorial_3_job_service":
        print("service-to-service [...] [INFO] Received response from http://echo-service:8000/echo: Bob said Hello")
    elif args[3] == failed_job:
        print("job-tutorial - ERROR - Job failed: SQL compilation error")
    else:
        print("job-tutorial - INFO - Job finished")
elif args[:2] == ["sql", "-q"] and args[2].startswith("EXECUTE JOB SERVICE"):
    name = args[2].split("NAME=")[1].split()[0]
    if name == failed_job:
        print(f"Job {name.upper()} failed with status: FAILED.", file=sys.stderr)
        sys.exit(1)
    print(f"Job {name.upper()} completed successfully with status: DONE.")
elif args[:2] == ["sql", "-q"] and args[2].startswith("SHOW SERVICE CONTAINERS IN SERVICE"):
    name = args[2].split()[-1]
    status, code = ("FAILED", 1) if name == failed_job else ("DONE", 0)
    print(json.dumps([{"service_name": name.upper(), "status": status, "last_exit_code": code}]))
