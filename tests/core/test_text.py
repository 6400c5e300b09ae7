import pytest

from app.core.text import fold, like_escape


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Kiến Thụy", "kien thuy"),
        ("Thành phố Hải Phòng", "thanh pho hai phong"),
        ("ĐĂNG KÝ KẾT HÔN", "dang ky ket hon"),
        ("  Đồng   Tháp ", "dong thap"),
        ("Huyện Đắk R'Lấp", "huyen dak r'lap"),
    ],
)
def test_fold_strips_case_accents_and_d_bar(text: str, folded: str) -> None:
    assert fold(text) == folded


def test_fold_of_composed_and_decomposed_forms_agree() -> None:
    import unicodedata

    name = "Thụy Hương"
    assert fold(unicodedata.normalize("NFD", name)) == fold(unicodedata.normalize("NFC", name))


def test_like_escape_makes_wildcards_literal() -> None:
    assert like_escape("50%_a\\b") == "50\\%\\_a\\\\b"
