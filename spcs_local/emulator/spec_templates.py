"""Specification templates (FROM SPECIFICATION_TEMPLATE[_FILE] ... USING (key => value, ...)), rendered as SPCS
documents them: Jinja2 placeholders, `{{ key }}`, optionally `{{ key | default(value[, boolean]) }}`.

Only those: a template can't loop, call or compute, so rendering one is bounded by its size and its values'.
"""

from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.sandbox import SandboxedEnvironment

ENVIRONMENT = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)
ALLOWED = (nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name, nodes.Const)


class TemplateProblem(ValueError):
    """A template SPCS would not render; the message names the problem."""


def render(template: str, values: dict[str, str]) -> str:
    """The spec a template makes with these values; TemplateProblem when it can't be rendered."""
    try:
        tree = ENVIRONMENT.parse(template)
        for node in tree.find_all(nodes.Node):
            if not (isinstance(node, ALLOWED) or (isinstance(node, nodes.Filter) and node.name == "default")):
                raise TemplateProblem(
                    f"line {node.lineno}: only {{{{ key }}}} and {{{{ key | default(...) }}}} are supported "
                    f"in a specification template, not {type(node).__name__.lower()}"
                )
        return ENVIRONMENT.from_string(tree).render(values)
    except TemplateError as error:
        where = f"line {error.lineno}: " if getattr(error, "lineno", None) else ""
        raise TemplateProblem(f"{where}{error.message or error}") from None
