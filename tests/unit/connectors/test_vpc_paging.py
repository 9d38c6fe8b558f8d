"""connectors/vpc.py pages through a VPC API collection with the SDK core's request/send, following the opaque
`start` token of `next.href` until a page has none, with IBM's `version` and `generation` on every request."""
from connectors.vpc import REGIONS, list_all, region_url


class _Answer:
    def __init__(self, result):
        self._result = result

    def get_result(self):
        return self._result


class _Service:
    """The two BaseService calls list_all makes; answers `pages` in order and records each request's params."""

    def __init__(self, pages):
        self.pages = list(pages)
        self.requests = []

    def prepare_request(self, *, method, url, headers, params):
        self.requests.append((method, url, headers, dict(params)))
        return len(self.requests) - 1

    def send(self, request):
        return _Answer(self.pages[request])


def _href(start=None):
    base = "https://us-south.iaas.cloud.ibm.com/v1/subnets?limit=2&version=2024-04-30&generation=2"
    return {"href": base + (f"&start={start}" if start else "")}


def test_every_page_is_read_in_order_by_its_start_token():
    service = _Service([{"subnets": [{"id": "a"}, {"id": "b"}], "first": _href(), "next": _href("r006-c")},
                        {"subnets": [{"id": "c"}, {"id": "d"}], "next": _href("r006-e")},
                        {"subnets": [{"id": "e"}]}])
    items = list_all(service, "subnets", version="2024-04-30", limit=2)
    assert [i["id"] for i in items] == ["a", "b", "c", "d", "e"]
    assert [r[3]["start"] for r in service.requests] == [None, "r006-c", "r006-e"]
    assert {(r[0], r[1]) for r in service.requests} == {("GET", "/subnets")}
    assert all(r[3]["version"] == "2024-04-30" and r[3]["generation"] == 2 and r[3]["limit"] == 2
               for r in service.requests)
    assert all(r[2] == {"Accept": "application/json"} for r in service.requests)


def test_an_empty_collection_is_one_request():
    service = _Service([{"load_balancers": [], "first": _href()}])
    assert list_all(service, "load_balancers", version="2024-04-30", limit=100) == []
    assert len(service.requests) == 1


def test_region_endpoints_are_ibms_and_unknown_regions_have_none():
    assert region_url("eu-de") == "https://eu-de.iaas.cloud.ibm.com/v1"
    assert region_url("mars-1") is None
    assert {"us-south", "us-east", "eu-gb", "jp-tok"} <= REGIONS
