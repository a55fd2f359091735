"""The spec linter: on the repository's specs, on the reference's examples (rewritten in tests/specs/reference),
and on broken specs a newcomer might write, one rule at a time."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from spcs_local.lint import ERROR, KNOWN_KEYS, SINGULAR, WARNING, as_spcs_reads, lint

from .conftest import ROOT

SPECS = ROOT / "tests" / "specs"
# Every spec example of the reference and the tutorials, with its verdict.
VERDICTS = {
    "echo-service/echo_spec.yaml": "ok",
    "tutorial-2-job/my_job_spec.yaml": "ok",
    "tutorial-3-service-to-service/service_to_service_spec.yaml": "ok",
    "tests/specs/tutorial_3_as_printed.yaml": ERROR,
    "tests/specs/reference/name-and-image.yaml": "ok",
    "tests/specs/reference/command-and-args.yaml": "ok",
    "tests/specs/reference/env-and-endpoint.yaml": "ok",
    "tests/specs/reference/readiness-probe.yaml": "ok",
    "tests/specs/reference/liveness-probe.yaml": "ok",
    "tests/specs/reference/resources-gpu.yaml": "ok",
    "tests/specs/reference/secrets.yaml": "ok",
    "tests/specs/reference/port-range.yaml": "ok",
    "tests/specs/reference/cors.yaml": "ok",
    "tests/specs/reference/volumes.yaml": "ok",
    "tests/specs/reference/monitoring-and-roles.yaml": "ok",
    "tests/specs/reference/credentials-and-autoscaling.yaml": "ok",
    "tests/specs/reference/singular-keys.yaml": WARNING,
    "tests/specs/reference/stage-mount-v1.yaml": WARNING,
    "tests/specs/reference/network-policy-config.yaml": WARNING,
}


def verdict(text: str) -> str:
    levels = {problem.level for problem in lint(text)}
    return ERROR if ERROR in levels else WARNING if levels else "ok"


def messages(text: str) -> list[str]:
    return [f"{problem.level}: {problem}" for problem in lint(textwrap.dedent(text))]


def linter(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spcs_local.lint", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize(("spec", "expected"), VERDICTS.items())
def test_each_example_of_the_reference_and_the_tutorials_gets_its_verdict(spec: str, expected: str) -> None:
    assert verdict((ROOT / spec).read_text()) == expected, messages((ROOT / spec).read_text())


def test_every_reference_example_is_in_the_table() -> None:
    examples = {str(path.relative_to(ROOT)) for path in (SPECS / "reference").glob("*.yaml")}

    assert examples <= set(VERDICTS)


def test_every_documented_field_lints_ok() -> None:
    examples = [yaml.safe_load((ROOT / spec).read_text()) for spec, expected in VERDICTS.items() if expected == "ok"]
    used = set().union(*map(keys_of, examples))
    undocumented = {"networkPolicyConfig", "allowInternetEgress"}  # the schema takes them only to warn

    assert {name for name, _ in KNOWN_KEYS} - set(SINGULAR) - undocumented - used == set()


def keys_of(value: object) -> set[str]:
    if isinstance(value, dict):
        return set(map(str, value)).union(*map(keys_of, value.values()))
    if isinstance(value, list):
        return set().union(*map(keys_of, value))
    return set()


def test_tutorial_3s_spec_as_the_docs_print_it_fails_with_one_line_per_problem() -> None:
    run = linter("tests/specs/tutorial_3_as_printed.yaml")

    assert run.returncode == 1
    assert run.stdout.splitlines() == [
        "tests/specs/tutorial_3_as_printed.yaml:1: error: spec: is empty (are the lines under it indented?)",
        "tests/specs/tutorial_3_as_printed.yaml:2: error: container: unknown key 'container' here: "
        "it belongs under spec (check the indentation)",
        "tests/specs/tutorial_3_as_printed.yaml:4: error: image: unknown key 'image' here: "
        "it belongs under spec.containers[] (check the indentation)",
        "tests/specs/tutorial_3_as_printed.yaml:5: error: env: unknown key 'env' here: "
        "it belongs under spec.containers[] (check the indentation)",
        "tests/specs/tutorial_3_as_printed.yaml:6: error: SERVICE_URL: unknown key 'SERVICE_URL': "
        "an environment variable belongs under the container's env (check the indentation)",
        "1 file: 0 ok, 0 with warnings, 1 with errors",
    ]


def test_several_files_and_globs_end_with_a_summary_and_warnings_keep_exit_0() -> None:
    run = linter("echo-service/echo_spec.yaml", "tests/specs/reference/s*.yaml")

    assert run.returncode == 0
    lines = run.stdout.splitlines()
    assert lines[0] == "echo-service/echo_spec.yaml: ok"
    assert "tests/specs/reference/singular-keys.yaml:4: warning: spec.container: is the singular form" in run.stdout
    assert lines[-1] == "4 files: 2 ok, 2 with warnings, 0 with errors"


def test_strict_makes_warnings_errors() -> None:
    run = linter("--strict", "tests/specs/reference/stage-mount-v1.yaml")

    assert run.returncode == 1
    assert "stage-mount-v1.yaml:11: error: spec.volumes[0].source:" in run.stdout
    assert run.stdout.splitlines()[-1] == "1 file: 0 ok, 0 with warnings, 1 with errors"


def test_a_missing_file_or_a_pattern_that_matches_nothing_is_an_error(tmp_path: Path) -> None:
    run = linter(str(tmp_path / "nope.yaml"), str(tmp_path / "*.yml"))

    assert run.returncode == 1
    assert f"{tmp_path}/nope.yaml: error: (file): cannot be read: No such file or directory" in run.stdout
    assert f"{tmp_path}/*.yml: error: (file): no file matches this pattern" in run.stdout


MINIMAL = """\
spec:
  containers:
  - name: main
    image: /db/schema/repo/image:latest
"""
ENDPOINT = MINIMAL + "  endpoints:\n  - "
VOLUME = MINIMAL + "    volumeMounts: [{name: v, mountPath: /v}]\n  volumes:\n  - "
SECRET = MINIMAL + "    secrets:\n    - "


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # the file
        ("", "error: (file): is empty: a spec starts with 'spec:'"),
        ("- spec", "error: (file): must be a mapping that starts with 'spec:', not a list"),
        ("spec:\n  containers:\n  - name: main\n      image: x\n", "error: (file): not valid YAML: mapping values"),
        (
            "spec: {}\n---\nspec: {}\n",
            "error: (file): not valid YAML: but found another document (is a line mis-indented?) (line 2)",
        ),
        (
            MINIMAL.replace("image:latest", "{{ image }}"),
            "error: (file): contains a template placeholder `{{ image }}`: render it first (line 4)",
        ),
        ("{% if x %}\nspec: {}\n{% endif %}", "contains a template placeholder `{% if x %}`: render it first (line 1)"),
        (MINIMAL + "  containers: []\n", "error: spec.containers: appears more than once: YAML keeps only the last"),
        (
            "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
            + "".join(f"{chr(98 + n)}: &{chr(98 + n)} [{', '.join(['*' + chr(97 + n)] * 10)}]\n" for n in range(6)),
            "error: (file): holds more than 100,000 values once its YAML aliases are expanded",
        ),
        ("[" * 5000 + "]" * 5000, "error: (file): is nested too deeply to be a spec"),
        # keys
        ("spec: {}", "error: spec: missing 'containers'"),
        ("spec:\n  containers: []", "error: spec.containers: must not be empty"),
        (
            MINIMAL + "    readinessprobe: {port: 8000, path: /}\n",
            "error: spec.containers[0].readinessprobe: unknown key 'readinessprobe': did you mean 'readinessProbe'?",
        ),
        (MINIMAL + "    volumeMount: []\n", "unknown key 'volumeMount': did you mean 'volumeMounts'?"),
        (
            MINIMAL + "    readinessProbe: {port: 8000, path: /, successThreshold: 1}\n",
            "error: spec.containers[0].readinessProbe.successThreshold: unknown key 'successThreshold' (line 5)",
        ),
        (
            MINIMAL + "    readinessProbe: {port: 8000, path: /, timeoutSeconds: 1}\n",
            "error: spec.containers[0].readinessProbe.timeoutSeconds: unknown key 'timeoutSeconds' (line 5)",
        ),
        (
            MINIMAL + "    livenessProbe: {port: 8000, path: /, periodSeconds: 0}\n",
            "error: spec.containers[0].livenessProbe.periodSeconds: must be at least 1 (got 0) (line 5)",
        ),
        (MINIMAL + "    livenessProbe: {path: /}\n", "error: spec.containers[0].livenessProbe: missing 'port'"),
        (
            MINIMAL + "  image: x\n",
            "error: spec.image: unknown key 'image' here: it belongs under spec.containers[] (check the indentation)",
        ),
        (
            MINIMAL + "min_instances: 1\n",
            "error: min_instances: unknown key 'min_instances': MIN_INSTANCES is an "
            "option of CREATE SERVICE or EXECUTE JOB SERVICE, not a spec field",
        ),
        (MINIMAL + "  queryWarehouse: w\n", "QUERY_WAREHOUSE is an option of CREATE SERVICE"),
        ("DATABASE_NAME: x\n" + MINIMAL, "error: DATABASE_NAME: unknown key 'DATABASE_NAME' (line 1)"),
        (
            MINIMAL + "    SERVER_PORT: 8000\n",
            "SERVER_PORT: unknown key 'SERVER_PORT': an environment variable belongs",
        ),
        # singular keys: a warning, and their contents checked as the plural's
        (
            MINIMAL.replace("containers", "container"),
            "warning: spec.container: is the singular form: SPCS reads it as 'containers', which the reference "
            "documents",
        ),
        (
            MINIMAL.replace("containers", "container").replace("main", "Main"),
            "error: spec.container[0].name: must be lowercase letters, digits and '-'",
        ),
        (
            ENDPOINT.replace("endpoints", "endpoint") + "{name: e, port: 80, public: true, protocol: TCP}\n",
            "error: spec.endpoint[0].protocol: a public endpoint must use protocol HTTP",
        ),
        (
            MINIMAL + "    volumeMounts: [{name: v, mountPath: /v}]\n  volume:\n  - {name: w, source: local}\n",
            'error: spec.containers[0].volumeMounts[0].name: mounts "v", which is not in spec.volumes',
        ),
        (MINIMAL + "  container: []\n", "error: spec.container: beside 'containers': SPCS reads one of them"),
        # containers
        ("spec:\n  containers:\n  - name: main", "error: spec.containers[0]: missing 'image'"),
        (MINIMAL.replace("main", "a" * 64), "error: spec.containers[0].name: must be at most 63 characters"),
        (MINIMAL.replace("main", "main-"), 'ending with a letter or digit (got "main-")'),
        (
            MINIMAL.replace("/db/schema/repo/image:latest", "python:3.11"),
            "error: spec.containers[0].image: must be an image in a Snowflake image repository: "
            '/<database>/<schema>/<repository>/<image>:<tag> (got "python:3.11")',
        ),
        (
            MINIMAL.replace("/db/schema/repo/image:latest", "<image_name>"),
            'error: spec.containers[0].image: is a placeholder from the docs ("<image_name>"): fill it in',
        ),
        (
            MINIMAL + "    env: {SNOWFLAKE_WAREHOUSE: <warehouse_name>}\n",
            "warning: spec.containers[0].env.SNOWFLAKE_WAREHOUSE: looks like a placeholder from the docs "
            '("<warehouse_name>"): fill it in',
        ),
        (
            MINIMAL + "    args: --query=x\n",
            'error: spec.containers[0].args: must be a list, not a string (got "--query=x")',
        ),
        (
            MINIMAL + "    command: [python3, 3]\n",
            "error: spec.containers[0].command[1]: must be a string, not a number",
        ),
        (MINIMAL + "    env: [A=1]\n", "error: spec.containers[0].env: must be a mapping, not a list"),
        (MINIMAL + "    env:\n      1A: x\n", "error: spec.containers[0].env.1A: is not an environment variable name"),
        (MINIMAL + "    env:\n      A:\n", "error: spec.containers[0].env.A: is empty"),
        (MINIMAL + "    readinessProbe: {port: 8000}\n", "error: spec.containers[0].readinessProbe: missing 'path'"),
        (MINIMAL + "    readinessProbe: {port: 70000, path: /}\n", "port: must be at most 65535 (got 70000)"),
        (
            MINIMAL + "    readinessProbe: {port: 8000, path: healthcheck}\n",
            "path: must be an absolute path, starting with '/' (got \"healthcheck\")",
        ),
        (
            MINIMAL + "    resources: {limits: {memory: 2}}\n",
            "error: spec.containers[0].resources.limits.memory: must be an amount with a unit",
        ),
        (MINIMAL + "    resources: {limits: {memory: 2GB}}\n", '(for example 512Mi or 2G) (got "2GB")'),
        (
            MINIMAL + "    resources: {requests: {cpu: 2Gi}}\n",
            'error: spec.containers[0].resources.requests.cpu: must be vCPUs (0.5, 2) or millicpus (500m) (got "2Gi")',
        ),
        (
            MINIMAL + "    resources: {requests: {nvidia.com/gpu: 1}}\n",
            "error: spec.containers[0].resources: GPUs must be both requested and limited, the same number in each",
        ),
        (
            MINIMAL + "    resources: {requests: {nvidia.com/gpu: 1}, limits: {nvidia.com/gpu: 2}}\n",
            "GPUs must be both",
        ),
        (MINIMAL + "    mountSessionToken: yes please\n", "mountSessionToken: must be true or false, not a string"),
        # secrets
        (SECRET + "{snowflakeSecret: s}\n", "error: spec.containers[0].secrets[0]: a secret needs exactly one of"),
        (
            SECRET + "{snowflakeSecret: s, envVarName: A, directoryPath: /a, secretKeyRef: password}\n",
            "a secret needs exactly one of 'envVarName' or 'directoryPath'",
        ),
        (
            SECRET + "{snowflakeSecret: s, directoryPath: /a, secretKeyRef: password}\n",
            "error: spec.containers[0].secrets[0]: secretKeyRef goes only with envVarName",
        ),
        (SECRET + "{snowflakeSecret: s, envVarName: A}\n", "a secret in envVarName needs secretKeyRef"),
        (
            SECRET + "{snowflakeSecret: s, envVarName: A, secretKeyRef: token}\n",
            'secretKeyRef: must be username, password or secret_string (got "token")',
        ),
        (
            SECRET + "{snowflakeSecret: {objectName: a, objectReference: b}, directoryPath: /a}\n",
            "snowflakeSecret: must name one secret",
        ),
        # endpoints
        (ENDPOINT + "{name: e}\n", "error: spec.endpoints[0]: an endpoint needs exactly one of 'port' or 'portRange'"),
        (ENDPOINT + "{name: e, port: 80, portRange: 80-90, protocol: TCP}\n", "exactly one of 'port' or 'portRange'"),
        (
            ENDPOINT + "{name: e, port: 80, public: true, protocol: TCP}\n",
            'error: spec.endpoints[0].protocol: a public endpoint must use protocol HTTP (got "TCP")',
        ),
        (
            ENDPOINT + "{name: e, portRange: 80-90}\n",
            "a portRange endpoint must say protocol: TCP (the default is HTTP)",
        ),
        (
            ENDPOINT + "{name: e, portRange: 80-90, protocol: HTTP}\n",
            "protocol: a portRange endpoint must use protocol TCP",
        ),
        (
            ENDPOINT + "{name: e, portRange: 80-90, protocol: TCP, public: true}\n",
            "public: a portRange endpoint can't be public",
        ),
        (
            ENDPOINT + "{name: e, portRange: 90-80, protocol: TCP}\n",
            "portRange: must run from a lower to a higher port",
        ),
        (ENDPOINT + "{name: e, portRange: '80', protocol: TCP}\n", "portRange: must be two ports joined by '-'"),
        (ENDPOINT + "{name: e, port: 80, protocol: UDP}\n", 'protocol: must be HTTP, TCP or HTTPS (got "UDP")'),
        (
            ENDPOINT + "{name: e, port: 80, protocol: HTTPS}\n",
            "warning: spec.endpoints[0].protocol: HTTPS is no longer in the reference: write HTTP",
        ),
        (
            ENDPOINT + "{name: e, port: 80, corsSettings: {Access-Control-Allow-Origin: ['*']}}\n",
            "Access-Control-Allow-Origin[0]: must be an origin: a URL with no path and no '*'",
        ),
        (
            ENDPOINT + "{name: e, port: 80, corsSettings: {Access-Control-Allow-Methods: [GET]}}\n",
            "corsSettings: missing 'Access-Control-Allow-Origin'",
        ),
        # volumes
        (VOLUME + "{name: v, source: memory}\n", "error: spec.volumes[0]: a memory or block volume needs a size"),
        (VOLUME + "{name: v}\n", "error: spec.volumes[0]: missing 'source'"),
        (VOLUME + "{name: v, source: disk}\n", 'source: must be local, memory, block or stage (got "disk")'),
        (
            VOLUME + "{name: v, source: block, size: 10G}\n",
            'size: a block volume\'s size must be a whole number of Gi (for example 10Gi) (got "10G")',
        ),
        (VOLUME + "{name: v, source: block, size: 1.5Gi}\n", "whole number of Gi"),
        (VOLUME + "{name: v, source: memory, size: lots}\n", "size: must be an amount with a unit"),
        (VOLUME + "{name: v, source: stage}\n", "a stage volume needs stageConfig, naming the stage"),
        (
            VOLUME + "{name: v, source: stage, stageConfig: {name: my_stage}}\n",
            "name: must name a stage, starting with '@'",
        ),
        (
            VOLUME + "{name: v, source: local, stageConfig: {name: '@s'}}\n",
            "source: stageConfig goes only with source: stage",
        ),
        (
            VOLUME + "{name: v, source: memory, size: 1Gi, blockConfig: {iops: 3000}}\n",
            "blockConfig goes only with source: block",
        ),
        (
            VOLUME + "{name: v, source: block, size: 1Gi, blockConfig: {iops: 10}}\n",
            "iops: must be at least 3000 (got 10)",
        ),
        (VOLUME + "{name: v, source: local, uid: 1000}\n", "source: uid and gid go only with a stage volume"),
        (
            VOLUME + "{name: v, source: '@models'}\n",
            'warning: spec.volumes[0].source: "@models" is the deprecated stage volume form: write source: stage',
        ),
        (
            MINIMAL + "    volumeMounts: [{name: data, mountPath: /data}]\n",
            'error: spec.containers[0].volumeMounts[0].name: mounts "data", which is not in spec.volumes',
        ),
        (
            MINIMAL + "  - name: main\n    image: /db/schema/repo/other:1\n",
            'error: spec.containers: the name "main" is used more than once',
        ),
        # the rest of the spec
        (MINIMAL + "  logExporters: {eventTableConfig: {logLevel: DEBUG}}\n", "logLevel: must be INFO, ERROR or NONE"),
        (
            MINIMAL + "  networkPolicyConfig: {allowInternetEgress: true}\n",
            "warning: spec.networkPolicyConfig: is not in the reference: egress is granted by CREATE SERVICE",
        ),
        (MINIMAL + "capabilities: {securityContext: {executeAsCaller: 1}}\n", "executeAsCaller: must be true or false"),
        (
            MINIMAL + "serviceRoles:\n- {name: r, endpoints: [ui]}\n",
            'error: serviceRoles[0].endpoints[0]: names "ui", which is not in spec.endpoints',
        ),
        (
            MINIMAL + "serviceRoles:\n- {name: my role!, endpoints: [ui]}\n",
            "serviceRoles[0].name: must be a Snowflake identifier",
        ),
    ],
)
def test_each_rule_names_the_problem_and_where_it_is(spec: str, expected: str) -> None:
    found = messages(spec)

    assert any(expected in message for message in found), found


def test_one_problem_gives_one_message() -> None:
    assert messages(MINIMAL.replace("/db/schema/repo/image:latest", "<image_name>")) == [
        'error: spec.containers[0].image: is a placeholder from the docs ("<image_name>"): fill it in (line 4)'
    ]
    assert len(messages(MINIMAL.replace("containers", "container"))) == 1


def test_values_are_shown_as_json_never_as_a_python_repr() -> None:
    found = messages(MINIMAL + "    args: {a: 1}\n    readinessProbe: {port: 'x', path: /}\n")

    assert "must be a list, not a mapping" in found[0]
    assert 'port: must be a whole number, not a string (got "x")' in found[1]
    assert not any("{'" in message or "['" in message for message in found)


def test_the_local_spcs_reads_singular_keys_as_plural() -> None:
    spec = {"spec": {"container": [{"name": "main"}], "endpoint": [{"name": "e"}], "volumes": []}}

    assert as_spcs_reads(spec) == {
        "spec": {"containers": [{"name": "main"}], "endpoints": [{"name": "e"}], "volumes": []}
    }
