import httpx
from sotay_platform.testing import eventually


async def test_create_and_read(client: httpx.AsyncClient, bearer) -> None:
    admin = bearer()
    r = await client.post(
        "/units", json={"code": "TW", "name": "Trung ương", "level": "central"}, headers=admin
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/units",
        json={
            "code": "HN",
            "name": "Đảng bộ Thành phố Hà Nội",
            "level": "province",
            "parent_code": "TW",
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    assert r.json()["path"] == ["TW", "HN"]

    async def children():
        r = await client.get("/units/TW/children", headers=admin)
        return r.status_code == 200 and r.json()

    kids = await eventually(children)
    assert [k["code"] for k in kids] == ["HN"]
