"""The stand-ins serve several accounts: the IAM stand-in puts a key's own account in its tokens
(`--api-key KEY=ACCOUNT`), and the VPC stand-in answers a token of another account with that account's world
(`--extra-world-seed`), the default world otherwise."""
from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer

from devstack.standins import iam, vpc
from devstack.synth.worldgen import build_world

REGIONS = ("us-south",)


async def _token(client: TestClient, key: str) -> str:
    reply = await client.post("/identity/token", data={"grant_type": iam.APIKEY_GRANT, "apikey": key})
    assert reply.status == 200, await reply.text()
    return (await reply.json())["access_token"]


async def _vpc_ids(client: TestClient, token: str) -> set[str]:
    reply = await client.get("/us-south/v1/vpcs", params={"version": "2024-04-30", "generation": "2"},
                             headers={"Authorization": f"Bearer {token}"})
    assert reply.status == 200, await reply.text()
    return {v["id"] for v in (await reply.json())["vpcs"]}


def test_each_accounts_key_gets_its_own_accounts_world():
    first, second = build_world(1, REGIONS), build_world(98, REGIONS)

    async def scenario():
        async with TestClient(TestServer(iam.make_app(api_keys=("key-a", f"key-b={second.account}")))) as ic, \
                TestClient(TestServer(vpc.make_app(seed=1, regions=REGIONS, extra_world_seeds=(98,)))) as vc:
            token_a, token_b = await _token(ic, "key-a"), await _token(ic, "key-b")
            assert iam.decode_jwt_unverified(token_b)["account"]["bss"] == second.account
            assert iam.decode_jwt_unverified(token_a)["account"]["bss"] == first.account
            return await _vpc_ids(vc, token_a), await _vpc_ids(vc, token_b)

    ids_a, ids_b = asyncio.run(scenario())
    assert ids_a == {v.id for v in first.vpcs} and ids_b == {v.id for v in second.vpcs} and not ids_a & ids_b
