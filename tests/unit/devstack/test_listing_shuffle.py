"""The COS stand-in's shuffled listings (devstack/standins/cos_auth_proxy.py): same entries, another order."""
from __future__ import annotations

import random
import re

from devstack.standins.cos_auth_proxy import shuffle_listing


def _page(keys: list[str]) -> bytes:
    entries = "".join(f"<Contents><Key>{k}</Key><ETag>&quot;{k}&quot;</ETag><Size>1</Size></Contents>" for k in keys)
    return (f'<?xml version="1.0"?><ListBucketResult><Name>b</Name><KeyCount>{len(keys)}</KeyCount>{entries}'
            "<IsTruncated>true</IsTruncated><NextContinuationToken>t</NextContinuationToken></ListBucketResult>"
            ).encode()


def test_shuffle_listing_keeps_every_entry_and_the_rest_of_the_page():
    keys = [f"a/{i:02d}" for i in range(30)]
    body = _page(keys)
    out = shuffle_listing(body, random.Random(3))
    assert len(out) == len(body) and out != body
    entries = re.compile(rb"<Contents>.*?</Contents>")
    assert sorted(entries.findall(out)) == sorted(entries.findall(body)) != entries.findall(out)
    assert out.startswith(body[:body.index(b"<Contents>")])
    assert out.endswith(b"<IsTruncated>true</IsTruncated><NextContinuationToken>t</NextContinuationToken>"
                        b"</ListBucketResult>")
    assert shuffle_listing(_page(["x"]), random.Random(3)) == _page(["x"])
