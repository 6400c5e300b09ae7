from typing import Any

import pytest
from httpx import AsyncClient

SECTORS = [
    ("ho-tich", "Hộ tịch"),
    ("tu-phap", "Tư pháp"),
    ("dat-dai", "Đất đai"),
]


def procedure(code: str, name: str, **overrides: Any) -> dict[str, Any]:
    return {
        "code": code,
        "name": name,
        "sector_code": "ho-tich",
        "levels": ["commune"],
        "implementing_agency": "Ủy ban nhân dân cấp xã",
        "channels": ["direct", "online"],
        "processing_time": {"value": 3, "unit": "working_days"},
        "fees": [{"name": "Lệ phí", "amount_vnd": 50000}],
        "online_service": "partial",
        "required_documents": [{"name": "Tờ khai", "originals": 1, "copies": 0}],
        "results": [{"name": "Giấy chứng nhận"}],
        "legal_basis": ["Luật Hộ tịch 2014"],
        "effective_from": "2016-01-01",
        **overrides,
    }


@pytest.fixture
async def sectors(writer: AsyncClient) -> None:
    for code, name in SECTORS:
        response = await writer.post("/api/v1/sectors", json={"code": code, "name": name})
        assert response.status_code == 201, response.text


@pytest.fixture
async def catalogue(writer: AsyncClient, sectors: None) -> None:
    for item in [
        procedure("1.000894", "Đăng ký kết hôn", online_service="full"),
        procedure("1.001193", "Đăng ký khai sinh", channels=["direct", "postal"], online_service="none"),
        procedure("1.004837", "Thủ tục đăng ký kết hôn có yếu tố nước ngoài", levels=["district"]),
        procedure(
            "1.003560.000.00.00.H56",
            "Đăng ký đất đai lần đầu",
            sector_code="dat-dai",
            levels=["district", "province"],
            status="suspended",
        ),
        procedure("2.000908", "Chứng thực bản sao từ bản chính", sector_code="tu-phap", fees=[]),
    ]:
        response = await writer.post("/api/v1/procedures", json=item)
        assert response.status_code == 201, response.text
