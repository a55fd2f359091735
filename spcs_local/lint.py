"""Lint SPCS service specifications against Snowflake's specification reference.

`python -m spcs_local.lint [--strict] FILE_OR_GLOB...` prints one line per problem, `file:line: level:
place: message`, and ends with a summary line. An error is what SPCS refuses. A warning is a form SPCS
accepts that the reference doesn't document or marks deprecated; it names the documented form. The exit
code is 1 when a file has an error, or with --strict a warning.

The checks: a JSON Schema of the reference (spec_schema.json), then what a schema can't say: singular keys
(`container:`), deprecated forms, unique names, references between names, GPU requests and limits, and
placeholders left from the docs or a template.
"""

import argparse
import glob
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA = json.loads((Path(__file__).parent / "spec_schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
ERROR, WARNING = "error", "warning"
SINGULAR = {"container": "containers", "endpoint": "endpoints", "volume": "volumes"}
# Keys people put in a spec that are options of CREATE SERVICE or EXECUTE JOB SERVICE, by their letters.
SERVICE_OPTIONS = {
    "mininstances": "MIN_INSTANCES",
    "maxinstances": "MAX_INSTANCES",
    "minreadyinstances": "MIN_READY_INSTANCES",
    "querywarehouse": "QUERY_WAREHOUSE",
    "autoresume": "AUTO_RESUME",
    "autosuspendsecs": "AUTO_SUSPEND_SECS",
    "externalaccessintegrations": "EXTERNAL_ACCESS_INTEGRATIONS",
    "computepool": "IN COMPUTE POOL",
    "replicas": "REPLICAS",
}
TEMPLATE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
DOCS_PLACEHOLDER = re.compile(r"^<[^<>]+>$")
MAX_VALUES = 100_000  # once YAML aliases are expanded: a spec is small, a "billion laughs" is not
KIND_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "empty",
}

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    level: str  # ERROR or WARNING
    where: str  # the key path, as `spec.containers[0].image`
    message: str
    line: int | None = None

    def __str__(self) -> str:
        at = f" (line {self.line})" if self.line else ""
        return f"{self.where}: {self.message}{at}"


def known_keys(schema: dict, where: str = "") -> Iterator[tuple[str, str]]:
    """Every key the schema knows, with where it belongs (`spec.containers[]`)."""
    if "$ref" in schema:
        schema = SCHEMA["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    for key, sub in schema.get("properties", {}).items():
        yield key, where
        place = f"{where}.{key}" if where else key
        yield from known_keys(sub.get("items", sub), place + ("[]" if "items" in sub else ""))


KNOWN_KEYS = [*known_keys(SCHEMA), *((singular, "spec") for singular in SINGULAR)]


def as_spcs_reads(document: Any) -> Any:
    """The spec as SPCS reads it: a singular `container:`, `endpoint:` or `volume:` as its plural."""
    spec = document.get("spec") if isinstance(document, dict) else None
    if not isinstance(spec, dict) or not any(s in spec and p not in spec for s, p in SINGULAR.items()):
        return document
    plural = {key: SINGULAR[key] if key in SINGULAR and SINGULAR[key] not in spec else key for key in spec}
    return {**document, "spec": {plural[key]: value for key, value in spec.items()}}


def lint(text: str) -> list[Problem]:
    """The problems of one specification, errors and warnings, in the order of their lines."""
    if match := TEMPLATE.search(text):
        line = text.count("\n", 0, match.start()) + 1
        placeholder = " ".join(match.group().split())[:60]
        return [Problem(ERROR, "(file)", f"contains a template placeholder `{placeholder}`: render it first", line)]
    try:
        return Linter(text).problems()
    except RecursionError:
        return [Problem(ERROR, "(file)", "is nested too deeply to be a spec")]


class Linter:
    def __init__(self, text: str) -> None:
        self.found: dict[tuple[str, KeyPath, str], None] = {}  # (level, path, message), in order, once each
        self.renamed: dict[str, str] = {}  # plural -> the singular key the file wrote
        self.root: yaml.Node | None = None
        self.problem_line: int | None = None  # where the YAML parser gave up
        loader = yaml.SafeLoader(text)
        try:
            self.root = loader.get_single_node()
            if self.root is not None and expanded_size(self.root) > MAX_VALUES:
                self.add(ERROR, (), f"holds more than {MAX_VALUES:,} values once its YAML aliases are expanded")
                return
            document = loader.construct_document(self.root) if self.root is not None else None
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            self.problem_line = mark.line + 1 if mark else None
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            self.add(ERROR, (), f"not valid YAML: {problem} (is a line mis-indented?)")
            return
        finally:
            loader.dispose()
        self.duplicate_keys()
        if document is None:
            self.add(ERROR, (), "is empty: a spec starts with 'spec:'")
        elif not isinstance(document, dict):
            self.add(ERROR, (), f"must be a mapping that starts with 'spec:', not {kind_of(document)}")
        else:
            document = self.plural_keys(document)
            self.schema_problems(document)
            self.cross_problems(document)
            self.deprecated_forms(document)

    def add(self, level: str, path: KeyPath, message: str) -> None:
        self.found[(level, path, message)] = None

    def problems(self) -> list[Problem]:
        problems = []
        for level, path, message in self.found:
            shown = self.as_written(path)
            line = self.problem_line if not path and self.problem_line else line_of(self.root, shown)
            problems.append(Problem(level, place(shown) if path else "(file)", message, line))
        return sorted(problems, key=lambda p: p.line or 0)

    def as_written(self, path: KeyPath) -> KeyPath:
        if len(path) >= 2 and path[0] == "spec" and path[1] in self.renamed:
            return ("spec", self.renamed[str(path[1])], *path[2:])
        return path

    # --- the checks ------------------------------------------------------------------------------

    def duplicate_keys(self) -> None:
        """YAML keeps only the last of two equal keys: the first is silently lost."""
        seen: set[int] = set()
        stack: list[tuple[yaml.Node, KeyPath]] = [(self.root, ())] if self.root is not None else []
        while stack:
            node, path = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, yaml.MappingNode):
                keys = [key.value for key, _ in node.value if isinstance(key, yaml.ScalarNode)]
                for key in sorted({key for key in keys if keys.count(key) > 1 and key != "<<"}):
                    self.add(ERROR, (*path, key), "appears more than once: YAML keeps only the last")
                stack += [(value, (*path, key.value)) for key, value in node.value if isinstance(key, yaml.ScalarNode)]
            elif isinstance(node, yaml.SequenceNode):
                stack += [(item, (*path, index)) for index, item in enumerate(node.value)]

    def plural_keys(self, document: dict) -> dict:
        spec = document.get("spec")
        if not isinstance(spec, dict):
            return document
        for singular, plural in SINGULAR.items():
            if singular in spec and plural in spec:
                self.add(ERROR, ("spec", singular), f"beside '{plural}': SPCS reads one of them; keep '{plural}'")
            elif singular in spec:
                self.renamed[plural] = singular
                message = f"is the singular form: SPCS reads it as '{plural}', which the reference documents"
                self.add(WARNING, ("spec", plural), message)
        spec = {key: value for key, value in spec.items() if not (key in SINGULAR and SINGULAR[key] in spec)}
        return as_spcs_reads({**document, "spec": spec})

    def schema_problems(self, document: dict) -> None:
        judged: set[KeyPath] = set()  # one message about a value, however many rules it breaks
        for error in VALIDATOR.iter_errors(document):
            if isinstance(error.instance, str) and DOCS_PLACEHOLDER.match(error.instance.strip()):
                continue  # cross_problems names it as a placeholder
            path = tuple(error.absolute_path)
            schema = error.schema if isinstance(error.schema, dict) else {}
            custom = schema.get("x-messages", {}).get(error.validator)
            if error.validator == "additionalProperties":
                allowed = list(schema.get("properties", {}))
                for key in sorted(set(error.instance) - set(allowed), key=str):
                    self.add(ERROR, (*path, key), unknown_key_message(str(key), allowed, error.instance, path))
            elif "propertyNames" in error.relative_schema_path:  # the key is the problem, not its value
                self.add(ERROR, (*path, error.instance), custom or "is not a valid name")
            elif error.validator == "required":
                for missing in [key for key in error.validator_value if key not in error.instance]:
                    self.add(ERROR, path, custom or f"missing '{missing}'")
            elif path not in judged:
                judged.add(path)
                if custom:
                    got = f" (got {shown(error.instance)})" if is_scalar(error.instance) else ""
                    self.add(ERROR, path, custom + got)
                else:
                    self.add(ERROR, path, generic_message(error.validator, error.validator_value, error.instance))

    def cross_problems(self, document: dict) -> None:
        spec = document.get("spec") if isinstance(document.get("spec"), dict) else {}
        names: dict[str, list] = {}
        for kind in ("containers", "endpoints", "volumes"):
            names[kind] = [entry.get("name") for entry in entries(spec, kind)]
            for name in sorted({n for n in names[kind] if n is not None and names[kind].count(n) > 1}, key=str):
                self.add(ERROR, ("spec", kind), f"the name {shown(name)} is used more than once")
        for i, container in enumerate(entries(spec, "containers")):
            for j, mount in enumerate(entries(container, "volumeMounts")):
                if "name" in mount and mount["name"] not in names["volumes"]:
                    where = ("spec", "containers", i, "volumeMounts", j, "name")
                    self.add(ERROR, where, f"mounts {shown(mount['name'])}, which is not in spec.volumes")
            resources = container.get("resources") if isinstance(container.get("resources"), dict) else {}
            gpus = [(resources.get(k) or {}).get("nvidia.com/gpu") if isinstance(resources.get(k), dict) else None
                    for k in ("requests", "limits")]  # fmt: skip
            if gpus[0] != gpus[1]:
                message = "GPUs must be both requested and limited, the same number in each (nvidia.com/gpu)"
                self.add(ERROR, ("spec", "containers", i, "resources"), message)
            self.session_token_problems(spec, i, container)
        for i, endpoint in enumerate(entries(spec, "endpoints")):
            span = endpoint.get("portRange")
            if isinstance(span, str) and re.fullmatch(r"[0-9]+-[0-9]+", span):
                first, last = map(int, span.split("-"))
                if not 1 <= first <= last <= 65535:
                    self.add(ERROR, ("spec", "endpoints", i, "portRange"),
                             f"must run from a lower to a higher port, within 1-65535 (got {shown(span)})")  # fmt: skip
        for i, role in enumerate(entries(document, "serviceRoles")):
            for j, endpoint in enumerate(role.get("endpoints") if isinstance(role.get("endpoints"), list) else []):
                if isinstance(endpoint, str) and endpoint not in names["endpoints"]:
                    self.add(ERROR, ("serviceRoles", i, "endpoints", j),
                             f"names {shown(endpoint)}, which is not in spec.endpoints")  # fmt: skip
        for path, value in scalars(document):
            if isinstance(value, str) and DOCS_PLACEHOLDER.match(value.strip()):
                if path[:2] == ("spec", "containers") and len(path) == 5 and path[3] == "env":
                    # SPCS passes any string to a variable: the container may even want "<none>".
                    self.add(WARNING, path, f"looks like a placeholder from the docs ({shown(value)}): fill it in")
                else:
                    self.add(ERROR, path, f"is a placeholder from the docs ({shown(value)}): fill it in")

    def session_token_problems(self, spec: dict, i: int, container: dict) -> None:
        """sessionTokenConfig as the reference bounds it: not without the token, no more access than 0644 and
        always the owner's read, and a path that no volume or secret mount overlaps."""
        config = container.get("sessionTokenConfig")
        if not isinstance(config, dict):
            return
        where = ("spec", "containers", i, "sessionTokenConfig")
        if container.get("mountSessionToken") is False:
            self.add(ERROR, where, "is set while mountSessionToken is false: there is no token to configure")
        permission = config.get("permission")
        if isinstance(permission, str) and re.fullmatch(r"0[0-7]{3}", permission):
            mode = int(permission, 8)
            if mode & ~0o644 or not mode & 0o400:
                message = f"can't grant more than \"0644\" and must keep the owner's read (got {shown(permission)})"
                self.add(ERROR, (*where, "permission"), message)
        path = config.get("path")
        if not isinstance(path, str):
            return
        mounts = [m.get("mountPath") for m in entries(container, "volumeMounts")]
        mounts += [s.get("directoryPath") for s in entries(container, "secrets")]
        for other in (m.rstrip("/") for m in mounts if isinstance(m, str) and m.startswith("/")):
            if other == path or path.startswith(other + "/") or other.startswith(path + "/") or not other:
                self.add(ERROR, (*where, "path"), f"overlaps the mount at {shown(other or '/')}")

    def deprecated_forms(self, document: dict) -> None:
        spec = document.get("spec") if isinstance(document.get("spec"), dict) else {}
        for i, volume in enumerate(entries(spec, "volumes")):
            source = volume.get("source")
            if isinstance(source, str) and source.startswith("@"):
                self.add(WARNING, ("spec", "volumes", i, "source"),
                         f"{shown(source)} is the deprecated stage volume form: write source: stage with "
                         f"stageConfig: {{name: {shown(source)}}}")  # fmt: skip
        if "networkPolicyConfig" in spec:
            self.add(WARNING, ("spec", "networkPolicyConfig"),
                     "is not in the reference: egress is granted by CREATE SERVICE ... "
                     "EXTERNAL_ACCESS_INTEGRATIONS = (...)")  # fmt: skip
        for i, endpoint in enumerate(entries(spec, "endpoints")):
            if str(endpoint.get("protocol")).upper() == "HTTPS":
                self.add(WARNING, ("spec", "endpoints", i, "protocol"),
                         "HTTPS is no longer in the reference: write HTTP (SPCS ends TLS at its ingress)")  # fmt: skip


# --- messages ------------------------------------------------------------------------------------


def unknown_key_message(key: str, allowed: list[str], siblings: dict, parent: KeyPath) -> str:
    message = f"unknown key '{key}'"
    option = SERVICE_OPTIONS.get(key.replace("_", "").replace("-", "").lower())
    if option:
        return f"{message}: {option} is an option of CREATE SERVICE or EXECUTE JOB SERVICE, not a spec field"
    if close := closest(key, allowed):
        return f"{message}: did you mean '{close}'?"
    homes = sorted({home or "(top level)" for name, home in KNOWN_KEYS if name == key})
    if homes:
        return f"{message} here: it belongs under {' or '.join(homes)} (check the indentation)"
    if key.isupper() and ("env" in siblings or parent[:2] == ("spec", "containers")):
        return f"{message}: an environment variable belongs under the container's env (check the indentation)"
    if close := closest(key, [name for name, _ in KNOWN_KEYS]):
        homes = sorted({home or "(top level)" for name, home in KNOWN_KEYS if name == close})
        return f"{message}: did you mean '{close}', under {' or '.join(homes)}? (check the indentation)"
    return message


def closest(key: str, candidates: list[str]) -> str | None:
    """The candidate within a few edits of the key (case aside), if one is."""
    allowed = 1 if len(key) <= 5 else 2 if len(key) <= 12 else 3
    scored = sorted((edit_distance(key.lower(), c.lower()), c) for c in candidates)
    return scored[0][1] if scored and scored[0][0] <= allowed else None


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def generic_message(validator: str, expected: Any, instance: Any) -> str:
    got = f" (got {shown(instance)})" if is_scalar(instance) else ""
    if validator == "type":
        if instance is None:
            return "is empty (are the lines under it indented?)"
        kinds = expected if isinstance(expected, list) else [expected]
        return f"must be {' or '.join(KIND_WORDS[k] for k in kinds)}, not {kind_of(instance)}{got}"
    if validator == "enum":
        options: list = []  # each option once, as the reference writes it: HTTP, not http as well
        for option in expected:
            options += [] if str(option).upper() in map(str.upper, map(str, options)) else [option]
        listed = f"{', '.join(map(str, options[:-1]))} or {options[-1]}" if len(options) > 1 else str(options[0])
        return f"must be {listed}{got}"
    messages = {
        "const": f"must be {shown(expected)}{got}",
        "minimum": f"must be at least {expected}{got}",
        "maximum": f"must be at most {expected}{got}",
        "exclusiveMinimum": f"must be more than {expected}{got}",
        "minItems": "must not be empty" if expected == 1 else f"needs at least {expected} entries",
        "minLength": "must not be empty",
        "maxLength": f"must be at most {expected} characters",
        "pattern": f"must match {expected}{got}",
    }
    return messages.get(validator, f"is not valid ({validator}){got}")


def shown(value: Any) -> str:
    """A value as JSON, cut short: never a Python repr."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def kind_of(value: Any) -> str:
    nouns = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return nouns.get(type(value), "empty" if value is None else "a value")


# --- walking documents and nodes -----------------------------------------------------------------


def entries(parent: Any, key: str) -> list[dict]:
    """The mappings of a list in the document, skipping what the schema already reported."""
    items = parent.get(key) if isinstance(parent, dict) else None
    return [item if isinstance(item, dict) else {} for item in items] if isinstance(items, list) else []


def scalars(value: Any, path: KeyPath = ()) -> Iterator[tuple[KeyPath, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from scalars(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from scalars(item, (*path, index))
    else:
        yield path, value


def place(path: KeyPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "(top level)"


def expanded_size(root: yaml.Node) -> int:
    """How many values the document has once its aliases are expanded, counting up to just past MAX_VALUES."""
    count, stack = 0, [root]
    while stack and count <= MAX_VALUES:
        node = stack.pop()
        count += 1
        if isinstance(node, yaml.MappingNode):
            stack += [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value
    return count


def line_of(root: yaml.Node | None, path: KeyPath) -> int | None:
    """The line of the deepest part of the path that the file has: a key's line for a key."""
    if root is None:
        return None
    node, line = root, root.start_mark.line + 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            pair = next((p for p in node.value if isinstance(p[0], yaml.ScalarNode) and p[0].value == str(part)), None)
            if pair is None:
                break
            line, node = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


# --- the command -----------------------------------------------------------------------------------


def files_of(patterns: list[str]) -> Iterator[tuple[str, list[Problem]]]:
    """Each file named or matched, with its problems; a pattern that matches nothing is a problem too."""
    for pattern in patterns:
        names = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        if not names:
            yield pattern, [Problem(ERROR, "(file)", "no file matches this pattern")]
        for name in names:
            try:
                text = Path(name).read_text(encoding="utf-8")
            except UnicodeDecodeError:
                yield name, [Problem(ERROR, "(file)", "is not UTF-8 text")]
            except OSError as error:
                yield name, [Problem(ERROR, "(file)", f"cannot be read: {error.strerror}")]
            else:
                yield name, lint(text)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m spcs_local.lint", description=__doc__.splitlines()[0])
    parser.add_argument("--strict", action="store_true", help="warnings are errors")
    parser.add_argument("files", nargs="+", metavar="FILE_OR_GLOB")
    args = parser.parse_args(argv)
    counts = {"ok": 0, WARNING: 0, ERROR: 0}
    for name, problems in files_of(args.files):
        levels = {ERROR if args.strict else p.level for p in problems}
        for problem in problems:
            at = f"{name}:{problem.line}" if problem.line else name
            level = ERROR if args.strict else problem.level
            print(f"{at}: {level}: {problem.where}: {problem.message}")
        if not problems:
            print(f"{name}: ok")
        counts[ERROR if ERROR in levels else WARNING if levels else "ok"] += 1
    total = sum(counts.values())
    print(f"{total} file{'s' if total != 1 else ''}: {counts['ok']} ok, {counts[WARNING]} with warnings, "
          f"{counts[ERROR]} with errors")  # fmt: skip
    return 1 if counts[ERROR] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
