"""A realistic, reproducible procedure catalogue (sectors and procedures) for load tests."""

import random
from typing import Any

SECTORS = [
    ("tu-phap", "Tư pháp"),
    ("ho-tich", "Hộ tịch"),
    ("dat-dai", "Đất đai"),
    ("xay-dung", "Xây dựng"),
    ("cong-thuong", "Công thương"),
    ("giao-thong", "Giao thông vận tải"),
    ("noi-vu", "Nội vụ"),
    ("y-te", "Y tế"),
    ("van-hoa", "Văn hóa - Thể thao và Gia đình"),
    ("lao-dong", "Lao động - Thương binh và Xã hội"),
    ("giao-duc", "Giáo dục và Đào tạo"),
    ("tai-nguyen", "Tài nguyên và Môi trường"),
]
ACTIONS = [
    "Đăng ký",
    "Cấp",
    "Cấp lại",
    "Cấp đổi",
    "Điều chỉnh",
    "Gia hạn",
    "Thẩm định",
    "Phê duyệt",
    "Chứng thực",
    "Xác nhận",
    "Thu hồi",
    "Công nhận",
    "Sửa đổi, bổ sung",
    "Thông báo",
]
OBJECTS = [
    "kết hôn",
    "khai sinh",
    "khai tử",
    "thường trú",
    "giấy phép xây dựng",
    "giấy chứng nhận quyền sử dụng đất",
    "hộ kinh doanh",
    "giấy phép kinh doanh bán lẻ rượu",
    "giấy phép lái xe",
    "chứng chỉ hành nghề y",
    "bản sao từ bản chính",
    "chữ ký trong giấy tờ",
    "hợp đồng giao dịch",
    "giấy phép hoạt động karaoke",
    "trợ cấp xã hội hằng tháng",
    "người có công với cách mạng",
    "trường mầm non tư thục",
    "báo cáo đánh giá tác động môi trường",
    "điều lệ hội",
    "tín ngưỡng, tôn giáo",
    "biển hiệu quảng cáo",
    "giấy phép khai thác nước dưới đất",
    "nhận cha, mẹ, con",
    "giám hộ",
    "thay đổi, cải chính hộ tịch",
    "cửa hàng xăng dầu",
]
QUALIFIERS = [
    "",
    "",
    "",
    " có yếu tố nước ngoài",
    " lần đầu",
    " cho nhà ở riêng lẻ",
    " tại cấp xã",
    " lưu động",
    " trong trường hợp bị mất",
    " đối với hộ gia đình, cá nhân",
    " theo yêu cầu",
]


def generate(count: int, seed: int = 2023) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    procedures = []
    for number in range(count):
        name = f"{rng.choice(ACTIONS)} {rng.choice(OBJECTS)}{rng.choice(QUALIFIERS)}"
        sector = rng.choice(SECTORS)[0]
        levels = rng.sample(["province", "district", "commune"], rng.choice([1, 1, 1, 2]))
        online = rng.choice(["none", "partial", "partial", "full", "full"])
        channels = (
            ["direct"] + (["online"] if online != "none" else []) + (["postal"] if rng.random() < 0.4 else [])
        )
        unit = rng.choice(["working_days", "working_days", "working_days", "working_hours", "days"])
        value = (
            rng.choice([1, 2, 3, 5, 7, 10, 15, 20, 30]) if unit != "working_hours" else rng.choice([4, 8, 16])
        )
        code = (
            f"{rng.choice([1, 2])}.{number:06d}"
            if rng.random() < 0.9
            else f"1.{number:06d}.000.00.00.H{rng.randint(10, 99)}"
        )
        procedures.append(
            {
                "code": code,
                "name": name,
                "sector_code": sector,
                "levels": levels,
                "implementing_agency": rng.choice(
                    ["Ủy ban nhân dân cấp xã", "Ủy ban nhân dân cấp huyện", "Sở Tư pháp"]
                ),
                "channels": channels,
                "processing_time": {"value": value, "unit": unit},
                "fees": [{"name": "Lệ phí", "amount_vnd": rng.choice([0, 10000, 20000, 50000, 100000])}],
                "online_service": online,
                "required_documents": [
                    {"name": f"Tờ khai {name.lower()}", "originals": 1, "copies": 0},
                    {"name": "Giấy tờ tùy thân", "originals": 0, "copies": 1},
                ],
                "results": [{"name": f"Kết quả {name.lower()}"}],
                "legal_basis": ["Nghị định 63/2010/NĐ-CP"],
                "effective_from": f"20{rng.randint(15, 23)}-0{rng.randint(1, 9)}-01",
            }
        )
    return procedures
