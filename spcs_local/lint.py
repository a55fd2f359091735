"""Lint SPCS service specifications: one line per problem, naming the file and the place in it.

`python -m spcs_local.lint FILE...` checks each file against a JSON Schema of the specification
(spec_schema.json), then what a schema can't express: unique names, volume mounts that name a
declared volume, service roles that name a declared endpoint. Exit code 1 when there is a problem.
"""

import difflib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA = json.loads((Path(__file__).parent / "spec_schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def known_keys(schema: dict, where: str = "") -> Iterator[tuple[str, str]]:
    """Every key the schema knows, with where it belongs (`spec.containers[]`)."""
    if "$ref" in schema:
        schema = SCHEMA["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    for key, sub in schema.get("properties", {}).items():
        yield key, where
        place = f"{where}.{key}" if where else key
        yield from known_keys(sub.get("items", sub), place + ("[]" if "items" in sub else ""))


KNOWN_KEYS = list(known_keys(SCHEMA))


def place(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "(top level)"


def unknown_key_message(key: str, allowed: list[str]) -> str:
    message = f"unknown key '{key}'"
    if close := difflib.get_close_matches(key, allowed, n=1, cutoff=0.6):
        return f"{message}: did you mean '{close[0]}'?"
    if key.isupper():
        return f"{message}: an environment variable belongs under a container's env (check the indentation)"
    names = [name for name, _ in KNOWN_KEYS]
    for match in difflib.get_close_matches(key, names, n=1, cutoff=0.75):
        homes = " or ".join(sorted({home or "(top level)" for name, home in KNOWN_KEYS if name == match}))
        if match == key:
            return f"{message} here: it belongs under {homes} (check the indentation)"
        return f"{message}: did you mean '{match}', under {homes}? (check the indentation)"
    return message


def schema_problems(document: Any) -> Iterator[tuple[str, str]]:
    for error in sorted(VALIDATOR.iter_errors(document), key=lambda e: list(map(str, e.absolute_path))):
        where = place(error.absolute_path)
        custom = error.schema.get("x-messages", {}).get(error.validator) if isinstance(error.schema, dict) else None
        if error.validator == "additionalProperties":
            allowed = list(error.schema.get("properties", {}))
            for key in sorted(set(error.instance) - set(allowed)):
                yield where, unknown_key_message(key, allowed)
        elif custom:
            yield where, f"{custom} (got {json.dumps(error.instance)})" if error.validator != "oneOf" else custom
        elif error.validator == "required":
            missing = error.message.split("'")[1]
            yield where, f"missing '{missing}'"
        elif error.validator == "type" and error.instance is None:
            yield where, "is empty (are the lines under it indented?)"
        else:
            yield where, error.message


def cross_problems(document: dict) -> Iterator[tuple[str, str]]:
    spec = document.get("spec") or {}
    names: dict[str, list[str]] = {}
    for kind in ("containers", "endpoints", "volumes"):
        names[kind] = [item.get("name") for item in spec.get(kind) or [] if isinstance(item, dict)]
        for name in sorted({n for n in names[kind] if names[kind].count(n) > 1}):
            yield f"spec.{kind}", f"the name '{name}' is used more than once"
    for i, container in enumerate(spec.get("containers") or []):
        for j, mount in enumerate(container.get("volumeMounts") or [] if isinstance(container, dict) else []):
            if isinstance(mount, dict) and mount.get("name") not in names["volumes"]:
                where = f"spec.containers[{i}].volumeMounts[{j}]"
                yield where, f"mounts '{mount.get('name')}', which is not in spec.volumes"
    for i, role in enumerate(document.get("serviceRoles") or []):
        for j, endpoint in enumerate(role.get("endpoints") or [] if isinstance(role, dict) else []):
            if endpoint not in names["endpoints"]:
                yield f"serviceRoles[{i}].endpoints[{j}]", f"names '{endpoint}', which is not in spec.endpoints"


def lint(text: str) -> list[tuple[str, str]]:
    """The problems of one specification, as (place, message) pairs."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(file)"
        return [(where, f"not valid YAML: {getattr(error, 'problem', error)} (is a line mis-indented?)")]
    problems = list(schema_problems(document))
    if isinstance(document, dict):
        problems += cross_problems(document)
    return problems


def main(files: list[str]) -> int:
    failed = False
    for file in files:
        problems = lint(Path(file).read_text())
        for where, message in problems:
            print(f"{file}: {where}: {message}")
        if not problems:
            print(f"{file}: ok")
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m spcs_local.lint SPEC.yaml...")
    sys.exit(main(sys.argv[1:]))
