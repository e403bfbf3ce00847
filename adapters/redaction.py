"""Credentials out of text that leaves the process (access-log lines, trace attributes): the
value of a ``token``, ``access_token`` or ``sig`` query parameter becomes ``[redacted]`` (its
name is matched percent-decoded and in any case, as the server reads it), and so does anything
shaped like a JWT wherever it appears (a header captured into a trace, say)."""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

REDACTED = "[redacted]"
CREDENTIAL_PARAMETERS = frozenset({"token", "access_token", "sig"})

# name=value at the start, or after ? & ; a space or a quote: a query parameter, not a path
_PARAMETER = re.compile(r"""(?<![^?&;\s"'])(?P<name>[^=&;?#\s"']+)=(?P<value>[^&;#\s"']*)""")
# three base64url parts, the first a JSON object's ('{"' encodes as 'eyJ')
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def redact_credentials(text: str) -> str:
    """``text`` with every credential parameter's value and every JWT replaced."""
    if "=" not in text and "eyJ" not in text:
        return text  # the common case, at no cost
    return _JWT.sub(REDACTED, _PARAMETER.sub(_redact_parameter, text))


def _redact_parameter(match: re.Match[str]) -> str:
    name = match["name"]
    if unquote_plus(name).lower() in CREDENTIAL_PARAMETERS:
        return f"{name}={REDACTED}"
    return match[0]
