"""The spec linter, on the repository's specs and on broken ones a newcomer might write."""

import subprocess
import sys
import textwrap

import pytest

from spcs_local.lint import lint

from .conftest import ROOT

SPECS = [
    "echo-service/echo_spec.yaml",
    "tutorial-2-job/my_job_spec.yaml",
    "tutorial-3-service-to-service/service_to_service_spec.yaml",
]


def problems_of(text: str) -> list[str]:
    return [f"{where}: {message}" for where, message in lint(textwrap.dedent(text))]


@pytest.mark.parametrize("spec", SPECS)
def test_the_repositorys_specs_pass(spec: str) -> None:
    assert lint((ROOT / spec).read_text()) == []


def test_tutorial_3s_spec_as_the_docs_print_it_fails_with_plain_messages() -> None:
    linter = subprocess.run(
        [sys.executable, "-m", "spcs_local.lint", "tests/specs/tutorial_3_as_printed.yaml"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip

    assert linter.returncode == 1
    lines = linter.stdout.splitlines()
    assert all(line.startswith("tests/specs/tutorial_3_as_printed.yaml: ") for line in lines)
    text = linter.stdout
    assert "unknown key 'container': did you mean 'containers', under spec?" in text
    assert "unknown key 'image' here: it belongs under spec.containers[]" in text
    assert "unknown key 'SERVICE_URL': an environment variable belongs under a container's env" in text
    assert "spec: is empty (are the lines under it indented?)" in text


MINIMAL = """
spec:
  containers:
  - name: main
    image: /db/schema/repo/image:latest
"""


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("spec: {}", "spec: missing 'containers'"),
        ("spec:\n  containers:\n  - name: main", "spec.containers[0]: missing 'image'"),
        (MINIMAL.replace("main", "Main"), "spec.containers[0].name: must be lowercase letters"),
        (MINIMAL.replace("main", "a" * 64), "spec.containers[0].name: must be at most 63 characters"),
        (MINIMAL.replace("main", "main-"), "ending with a letter or digit"),
        (MINIMAL + "    args: --query=x\n", "spec.containers[0].args: '--query=x' is not of type 'array'"),
        (MINIMAL + "    command: [python3, 3]\n", "spec.containers[0].command[1]: 3 is not of type 'string'"),
        (MINIMAL + "    env: [A=1]\n", "spec.containers[0].env: ['A=1'] is not of type 'object'"),
        (MINIMAL + "    readinessProbe: {port: 8000}\n", "spec.containers[0].readinessProbe: missing 'path'"),
        (MINIMAL + "    readinessprobe: {port: 8000, path: /}\n", "did you mean 'readinessProbe'?"),
        (MINIMAL + "    resources: {limits: {memory: 2}}\n", "spec.containers[0].resources.limits.memory"),
        (MINIMAL + "  endpoints:\n  - name: e\n", "spec.endpoints[0]: an endpoint needs exactly one of 'port' or"),
        (MINIMAL + "  endpoints:\n  - {name: e, port: 80, portRange: 80-90}\n", "exactly one of 'port' or 'portRange'"),
        (MINIMAL + "  endpoints:\n  - {name: e, port: 80, public: true, protocol: TCP}\n", "must use protocol HTTP"),
        (MINIMAL + "  volumes:\n  - {name: v, source: memory}\n", "a memory or block volume needs a size"),
        (MINIMAL + "  volumes:\n  - {name: v, source: disk}\n", "must be local, memory, block or @<stage>"),
        (
            MINIMAL + "    volumeMounts: [{name: data, mountPath: /data}]\n",
            "mounts 'data', which is not in spec.volumes",
        ),
        (MINIMAL + "  - name: main\n    image: x\n", "spec.containers: the name 'main' is used more than once"),
        (MINIMAL + "serviceRoles:\n- {name: r, endpoints: [ui]}\n", "names 'ui', which is not in spec.endpoints"),
        ("spec:\n  containers:\n  - name: main\n      image: x\n", "line 4: not valid YAML"),
    ],
)
def test_a_broken_spec_fails_for_its_reason(spec: str, expected: str) -> None:
    problems = problems_of(spec)

    assert any(expected in problem for problem in problems), problems
