"""What of `make setup build push deploy teardown` differs for an account, run with recording stand-ins
of `snow` and `docker`: its registry host in the image tags, its connection, its ingress URL.

The stand-ins (tests/standins/recorder.py) first on PATH record every command and answer as an account
would. The deploy path itself runs for real against the local SPCS (tests/test_local_spcs.py); the live
test at the end runs it against a real account.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from .conftest import ROOT, live_snowflake_env, without_snowflake_env

RECORDER = ROOT / "tests" / "standins" / "recorder.py"
REGISTRY = "myorg-myaccount.registry.snowflakecomputing.com/tutorial_db/data_schema/tutorial_repository"
CONTEXT = ["-c", "tutorial", "--role", "test_role", "--warehouse", "tutorial_warehouse"]
CONTEXT += ["--database", "tutorial_db", "--schema", "data_schema"]


def make(
    tmp_path: Path, *targets: str, connection: str = "tutorial", **env: str
) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    """Run the real Makefile with the stand-ins first on PATH; return its result and the recorded argv."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("snow", "docker"):
        if not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(RECORDER)
    log = tmp_path / "calls.jsonl"
    log.unlink(missing_ok=True)
    run_env = {**without_snowflake_env(), "PATH": f"{bin_dir}:{os.environ['PATH']}", "STANDIN_LOG": str(log), **env}
    result = subprocess.run(
        ["make", "-s", *targets, f"CONNECTION={connection}", f"LOCAL_DIR={tmp_path}"],
        cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    calls = [json.loads(line)["argv"] for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls


def test_the_uploaded_specs_name_this_accounts_repository(tmp_path: Path) -> None:
    make(tmp_path, "deploy", "DATABASE=my_db", "REPOSITORY=my_repo", "JOB_IMAGE=my_job:v2")

    spec = (tmp_path / "deploy" / "my_job_spec.yaml").read_text()
    assert "image: /my_db/data_schema/my_repo/my_job:v2" in spec
    assert "--query=select current_time() as time,'hello'" in spec


def test_make_build_push_tags_with_the_repository_url(tmp_path: Path) -> None:
    result, calls = make(tmp_path, "build", "push")

    assert result.returncode == 0, result.stderr
    url = ["snow", "spcs", "image-repository", "url", "tutorial_repository", *CONTEXT]
    images = [("echo-service", "my_echo_service_image:latest"), ("tutorial-2-job", "my_job_image:latest"),
              ("tutorial-3-service-to-service", "service_to_service:latest")]  # fmt: skip
    assert calls == [
        ["snow", "connection", "list", "--format", "JSON"],
        url,
        ["docker", "buildx", "version"],  # without buildx, the builds use the classic builder
        *[
            ["docker", "build", "--platform", "linux/amd64", "-t", f"{REGISTRY}/{image}", str(ROOT / folder)]
            for folder, image in images
        ],
        ["snow", "connection", "list", "--format", "JSON"],
        url,
        ["snow", "spcs", "image-registry", "login", "-c", "tutorial"],
        *[["docker", "push", f"{REGISTRY}/{image}"] for _, image in images],
    ]


def test_a_failing_step_stops_the_chain_with_its_exit_code(tmp_path: Path) -> None:
    result, calls = make(tmp_path, "deploy", STANDIN_FAIL_ON="CREATE SERVICE echo_service")

    assert "Stopped: CREATE SERVICE echo_service" in result.stderr and "(exit code 3)" in result.stderr
    assert "CREATE SERVICE echo_service" in calls[-1][3]
    assert not any("EXECUTE JOB SERVICE" in " ".join(call) for call in calls)


def test_overriding_variables_changes_the_commands(tmp_path: Path) -> None:
    result, calls = make(tmp_path, "teardown", "COMPUTE_POOL=my_pool", "SCHEMA=my_schema", "CONFIRM=yes")

    assert result.returncode == 0, result.stderr
    context = [*CONTEXT[:-1], "my_schema"]
    statements = [call[3] for call in calls[1:]]
    assert statements == [
        "DROP SERVICE IF EXISTS tutorial_2_job_service",
        "DROP SERVICE IF EXISTS tutorial_3_job_service",
        "DROP FUNCTION IF EXISTS my_echo_udf(varchar)",
        "DROP SERVICE IF EXISTS echo_service",
        "ALTER COMPUTE POOL my_pool STOP ALL",
        "DROP IMAGE REPOSITORY IF EXISTS tutorial_repository",
        "DROP STAGE IF EXISTS tutorial_stage",
        "DROP COMPUTE POOL IF EXISTS my_pool",
    ]
    assert calls[1][4:] == context
    assert calls[-1][4:] == ["--role", "ACCOUNTADMIN", "-c", "tutorial"]


def test_teardown_keeps_the_pool_repository_and_stage_unless_confirmed(tmp_path: Path) -> None:
    result, calls = make(tmp_path, "teardown")

    assert [call[3] for call in calls[1:]][-1] == "ALTER COMPUTE POOL tutorial_compute_pool STOP ALL"
    assert "make teardown CONFIRM=yes" in result.stdout


def test_setup_runs_both_parts_of_the_common_setup(tmp_path: Path) -> None:
    result, calls = make(tmp_path, "setup")

    assert result.returncode == 0, result.stderr
    files = [call[3] for call in calls[1:]]
    assert files == [str(ROOT / "common-setup" / "accountadmin.sql"), str(ROOT / "common-setup" / "role.sql")]
    assert "compute_pool=tutorial_compute_pool" in calls[1]


def test_endpoints_prints_the_ui_url(tmp_path: Path) -> None:
    result, _ = make(tmp_path, "endpoints")

    assert "echoendpoint: https://abcd-myorg-myaccount.snowflakecomputing.app/ui" in result.stdout


def test_no_connection_gives_the_configuration_message_and_runs_nothing(tmp_path: Path) -> None:
    result, calls = make(tmp_path, "deploy", STANDIN_NO_CONNECTION="1")

    assert result.returncode != 0
    assert "No Snowflake connection is configured" in result.stderr
    assert "connections.toml" in result.stderr and "SNOWFLAKE_ACCOUNT" in result.stderr
    assert calls == [["snow", "connection", "list", "--format", "JSON"]]


def test_no_docker_says_so(tmp_path: Path) -> None:
    result, _ = make(tmp_path, "build", "DOCKER=no-such-docker")

    assert result.returncode != 0
    assert "'no-such-docker' is not installed or not on PATH" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("CONNECTION", "x; touch {planted} #", "CONNECTION 'x; touch {planted} #' is not a connection name"),
        ("DATABASE", "x; touch {planted} #", "DATABASE 'x; touch {planted} #' is not a Snowflake identifier"),
        ("ROLE", "r$$(touch {planted})", "ROLE 'r$(touch {planted})' is not a Snowflake identifier"),  # $$ is make's $
        ("STAGE", "s`touch {planted}`", "STAGE 's`touch {planted}`' is not a Snowflake identifier"),
        ("COMPUTE_POOL", "pool' or '1", "COMPUTE_POOL \"pool' or '1\" is not a Snowflake identifier"),
        ("ECHO_IMAGE", "echo:latest; touch {planted}", "ECHO_IMAGE 'echo:latest; touch {planted}' is not an image"),
        ("CONFIRM", "maybe", "CONFIRM 'maybe' must be yes or empty"),
    ],
)
def test_a_bad_name_is_one_line_naming_the_variable_and_nothing_runs(
    tmp_path: Path, variable: str, value: str, problem: str
) -> None:
    planted = tmp_path / "planted"
    value, problem = value.format(planted=planted), problem.format(planted=planted)
    args = ("status", f"{variable}={value}") if variable != "CONNECTION" else ("status",)
    result, calls = make(tmp_path, *args, **({"connection": value} if variable == "CONNECTION" else {}))

    assert result.returncode != 0
    assert result.stderr.splitlines()[0].startswith(problem), result.stderr
    assert calls == [] and not planted.exists()


def test_a_local_dir_with_shell_characters_is_one_path_not_a_command(tmp_path: Path) -> None:
    planted = tmp_path / "planted"

    result = subprocess.run(["make", "-s", "reset-local", f"LOCAL_DIR={tmp_path}/x; touch {planted} #"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip

    assert result.returncode == 0 and not planted.exists()


def test_a_shells_own_database_or_role_doesnt_change_the_target(tmp_path: Path) -> None:
    planted = tmp_path / "planted"

    result, calls = make(tmp_path, "status", DATABASE=f"x; touch {planted} #", ROLE="intruder", SCHEMA="elsewhere")

    assert result.returncode == 0, result.stderr
    assert not planted.exists()
    assert calls[-1][-len(CONTEXT) :] == CONTEXT  # the tutorials' names, as if the shell had set none


def test_make_n_shows_no_secret(tmp_path: Path) -> None:
    dry = subprocess.run(
        ["make", "-n", "deploy", "CONNECTION=tutorial"], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "SNOWFLAKE_PASSWORD": "s3cret-pa55"},
    )  # fmt: skip

    assert "s3cret-pa55" not in dry.stdout + dry.stderr


def test_live_make_build_push_deploy_against_a_real_account(tmp_path: Path) -> None:
    env = live_snowflake_env()
    connection = env.get("SNOWFLAKE_CONNECTION_NAME", "")
    result = subprocess.run(
        ["make", "build", "push", "deploy", f"CONNECTION={connection}", f"LOCAL_DIR={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=3600,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Job tutorial_2_job_service: DONE" in result.stdout
    assert "Bob said Hello" in result.stdout
