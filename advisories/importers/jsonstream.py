"""Stream the items of one top-level JSON array, keeping the document's other top-level members.

NVD API pages and the CISA KEV catalog are one object with a large array
("vulnerabilities") beside a few small members ("totalResults", "count").
`TopLevelArray` hands over the array's items one by one with ijson, so the
array is never in memory whole, and collects the small members on the way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import ijson

# ijson's errors for malformed or truncated JSON all derive from JSONError; yajl2_c adds none of its own
JSON_ERRORS = (ijson.JSONError, ValueError, UnicodeDecodeError)


class TopLevelArray:
    """Iterate to get the array's items; afterwards `members` holds the other top-level members and `found` says
    whether the array was there. A document that is one object without the array ends up whole in `members`.

    Raises ijson.JSONError (see JSON_ERRORS) when the bytes are not JSON, and ValueError when the top level is
    not an object.
    """

    def __init__(self, stream: IO[bytes], array: str) -> None:
        self._stream = stream
        self._array = array
        self.members: dict[str, Any] = {}
        self.found = False

    def __iter__(self) -> Iterator[Any]:
        top = ijson.ObjectBuilder()
        item: ijson.ObjectBuilder | None = None
        inside = f"{self._array}.item"
        for prefix, event, value in ijson.parse(self._stream, use_float=True):
            if prefix == "" and event not in ("start_map", "map_key", "end_map"):
                raise ValueError("the document is not a JSON object")
            if prefix != self._array and not prefix.startswith(self._array + "."):
                top.event(event, value)  # another top-level member
            elif prefix == self._array:
                self.found = self.found or event == "start_array"
            elif not self.found or (prefix != inside and not prefix.startswith(inside + ".")):
                continue  # the member is there but is not an array
            elif item is None and event not in ("start_map", "start_array"):
                yield value  # a scalar item; the caller rejects it
            else:
                item = item or ijson.ObjectBuilder()
                item.event(event, value)
                if prefix == inside and event in ("end_map", "end_array"):
                    yield item.value
                    item = None
        self.members = top.value if isinstance(getattr(top, "value", None), dict) else {}
