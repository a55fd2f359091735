"""The embedded Snowflake emulator, grown into a small local SPCS.

One module a job, dependencies running one way:

- `front`: the Snowflake protocol (login, queries, asynchronous results, tokens, cancel, stage uploads);
- `guard`: who may talk to it and how much: Host names, peers, JSON bodies, bounds, sessions, tickets;
- `statements`: SPCS SQL turned into calls on the catalog (no Docker here);
- `catalog`: compute pools, image repositories, services and functions, persisted (no SQL here);
- `docker_backend`: runs the catalog's workloads on Docker, each behind its guard's firewall (no SQL, no catalog);
- `tls`: the local CA and the certificate of the HTTPS front that containers reach;
- `registry`: the image registry process and what it holds;
- `fakesnow_fixes`: everything that adapts fakesnow, which runs the rest of the SQL.

This module holds only what clients need to reach it: its names and their environment.
"""

# The tutorials' names, as the emulator's defaults.
ACCOUNT, USER, PASSWORD = "tutorial", "tutorial_user", "tutorial_password"
DATABASE, SCHEMA, WAREHOUSE, ROLE = "TUTORIAL_DB", "DATA_SCHEMA", "TUTORIAL_WAREHOUSE", "TEST_ROLE"
# What CURRENT_ORGANIZATION_NAME() and CURRENT_REGION() answer: no cloud's.
ORGANIZATION, REGION = "LOCAL", "LOCAL"
# Nothing leaves the machine: the connector's cloud platform detection (which asks 169.254.169.254 and
# the like) stays off for every client of the emulator on the host. (The local SPCS's containers get only
# what SPCS gives them: their firewall refuses those addresses.)
LOCAL_ONLY = {"SNOWFLAKE_DISABLE_PLATFORM_DETECTION": "true"}


def client_env(port: int, host: str = "127.0.0.1") -> dict[str, str]:
    """The environment a client (the Tutorial 2 job, `snow`, a notebook) needs to reach the emulator."""
    return {
        "SNOWFLAKE_ACCOUNT": ACCOUNT,
        "SNOWFLAKE_USER": USER,
        "SNOWFLAKE_PASSWORD": PASSWORD,
        "SNOWFLAKE_HOST": host,
        "SNOWFLAKE_PORT": str(port),
        "SNOWFLAKE_PROTOCOL": "http",
        "SNOWFLAKE_DATABASE": DATABASE,
        "SNOWFLAKE_SCHEMA": SCHEMA,
        "SNOWFLAKE_WAREHOUSE": WAREHOUSE,
        "SNOWFLAKE_ROLE": ROLE,
        **LOCAL_ONLY,
    }


def connection_params(env: dict[str, str]) -> dict[str, str]:
    """SNOWFLAKE_* env vars as connector (and Snowpark) parameters: SNOWFLAKE_HOST -> host. LOCAL_ONLY's
    variables are for the connector's environment, not parameters."""
    return {name.removeprefix("SNOWFLAKE_").lower(): value for name, value in env.items() if name not in LOCAL_ONLY}
