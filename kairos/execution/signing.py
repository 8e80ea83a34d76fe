"""What request signing shares across venues: RFC 3986 percent-encoding of signed parameters.

Each venue's own signature lives in its module (kairos/execution/signing_<venue>.py), shared by its
executor and by the simulator dialect that checks it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from itertools import chain
from urllib.parse import quote

Params = Iterable[tuple[str, str]]
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]*")


def _encode(text: str) -> str:
    return text if _UNRESERVED.fullmatch(text) else quote(text, safe="")


def percent_encode(params: Params) -> str:
    """``k=v&k=v`` with RFC 3986 percent-encoding (only ``A-Za-z0-9-_.~`` left as they are).

    Same output as ``urlencode(params, quote_via=quote, safe="")``. The usual request is all safe characters:
    one regex check over every key and value together, then a plain join (an order's signing is on the hot
    path); otherwise each part is checked and quoted on its own.
    """
    pairs = params if isinstance(params, list) else list(params)
    if _UNRESERVED.fullmatch("".join(chain.from_iterable(pairs))):
        return "&".join([f"{key}={value}" for key, value in pairs])
    return "&".join([f"{_encode(key)}={_encode(value)}" for key, value in pairs])
