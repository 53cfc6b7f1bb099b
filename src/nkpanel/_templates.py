"""The Jinja2 environment nkpanel renders its HTML pages with (the reports, the flow batch's
review page): a package's ``templates`` folder, HTML escaped, an undefined name an error."""

from __future__ import annotations

from functools import cache

import jinja2

__all__ = ["html_templates"]


@cache
def html_templates(package: str) -> jinja2.Environment:
    """The environment of the templates in ``package``'s ``templates`` folder."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
