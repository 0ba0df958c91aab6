"""Small paginator objects. `update_state` reads a page; `update_request` prepares the next request;
`state()` / `restore()` save and resume the position (a JSON-able dict) across task tries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin


@dataclass
class Request:
    url: str
    params: dict[str, Any] = field(default_factory=dict)


def json_path(data: Any, path: str | None) -> Any:
    """The value at a dotted path ("paging.next", "meta.next_token"); None when any step is missing."""
    if not path:
        return data
    node = data
    for step in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(step)
    return node


class Paginator:
    """Base: a single page."""

    def __init__(self) -> None:
        self.has_next = True

    def update_state(self, data: Any, records: list) -> None:
        self.has_next = False

    def update_request(self, request: Request) -> None:  # pragma: no cover - single page never asks
        raise RuntimeError("no next page")

    def state(self) -> dict:
        return {}

    def restore(self, state: dict) -> None:
        pass


class SinglePage(Paginator):
    pass


class NextUrlPaginator(Paginator):
    """Follow a link in the body: absolute (`paging.next`, `meta.next_page_url`) or relative to the
    base URL (Twilio's `next_page_uri`). The link carries every parameter, so params are cleared."""

    def __init__(self, path: str, base_url: str | None = None) -> None:
        super().__init__()
        self.path = path
        self.base_url = base_url
        self.next: str | None = None

    def update_state(self, data: Any, records: list) -> None:
        link = json_path(data, self.path)
        self.next = link if isinstance(link, str) and link else None
        self.has_next = self.next is not None

    def update_request(self, request: Request) -> None:
        assert self.next is not None
        request.url = urljoin(self.base_url.rstrip("/") + "/", self.next) if self.base_url else self.next
        request.params = {}

    def state(self) -> dict:
        return {"next": self.next}

    def restore(self, state: dict) -> None:
        self.next = state.get("next")
        self.has_next = self.next is not None


class TokenParamPaginator(Paginator):
    """A token in the body sent back as a parameter (X: `meta.next_token` -> `pagination_token`)."""

    def __init__(self, path: str, param: str) -> None:
        super().__init__()
        self.path = path
        self.param = param
        self.token: str | None = None

    def update_state(self, data: Any, records: list) -> None:
        token = json_path(data, self.path)
        self.token = str(token) if token not in (None, "") else None
        self.has_next = self.token is not None

    def update_request(self, request: Request) -> None:
        request.params[self.param] = self.token

    def state(self) -> dict:
        return {"token": self.token}

    def restore(self, state: dict) -> None:
        self.token = state.get("token")
        self.has_next = self.token is not None


class ItemTokenPaginator(Paginator):
    """The last item's token sent as a parameter (Typeform: `before=<token of the oldest item>`).
    Stops on a short or empty page."""

    def __init__(self, field_name: str, param: str, page_size: int) -> None:
        super().__init__()
        self.field_name = field_name
        self.param = param
        self.page_size = page_size
        self.token: str | None = None

    def update_state(self, data: Any, records: list) -> None:
        last = records[-1] if records else None
        token = last.get(self.field_name) if isinstance(last, dict) else None
        self.token = str(token) if token else None
        self.has_next = self.token is not None and len(records) >= self.page_size

    def update_request(self, request: Request) -> None:
        request.params[self.param] = self.token

    def state(self) -> dict:
        return {"token": self.token}

    def restore(self, state: dict) -> None:
        self.token = state.get("token")
        self.has_next = self.token is not None


class OffsetPaginator(Paginator):
    """`start` / `count` paging (LinkedIn); stops at `paging.total` or on a short page."""

    def __init__(self, count: int, *, start_param: str = "start", count_param: str = "count",
                 total_path: str | None = "paging.total", start: int = 0) -> None:
        super().__init__()
        self.count = count
        self.start = start
        self.start_param = start_param
        self.count_param = count_param
        self.total_path = total_path

    def init_request(self, request: Request) -> None:
        request.params[self.start_param] = self.start
        request.params[self.count_param] = self.count

    def update_state(self, data: Any, records: list) -> None:
        self.start += len(records)
        total = json_path(data, self.total_path) if self.total_path else None
        if isinstance(total, int):
            self.has_next = self.start < total and len(records) > 0
        else:
            self.has_next = len(records) >= self.count

    def update_request(self, request: Request) -> None:
        request.params[self.start_param] = self.start
        request.params[self.count_param] = self.count

    def state(self) -> dict:
        return {"start": self.start}

    def restore(self, state: dict) -> None:
        self.start = int(state.get("start", 0))
        self.has_next = True
