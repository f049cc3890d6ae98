"""Invented identities: names, resident ID numbers, phones and addresses.

Resident ID numbers follow GB 11643-1999: six-digit area code, birth date,
three-digit sequence (odd for men), and an ISO 7064 MOD 11-2 check character.
"""

from __future__ import annotations

import random
from datetime import date

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"

_SURNAMES = (
    ("王", "Wang"),
    ("李", "Li"),
    ("张", "Zhang"),
    ("刘", "Liu"),
    ("陈", "Chen"),
    ("杨", "Yang"),
    ("黄", "Huang"),
    ("赵", "Zhao"),
    ("吴", "Wu"),
    ("周", "Zhou"),
    ("徐", "Xu"),
    ("孙", "Sun"),
    ("马", "Ma"),
    ("朱", "Zhu"),
    ("胡", "Hu"),
    ("郭", "Guo"),
)
_GIVEN = (
    ("伟", "Wei"),
    ("芳", "Fang"),
    ("娜", "Na"),
    ("敏", "Min"),
    ("静", "Jing"),
    ("丽", "Li"),
    ("强", "Qiang"),
    ("磊", "Lei"),
    ("军", "Jun"),
    ("洋", "Yang"),
    ("勇", "Yong"),
    ("艳", "Yan"),
    ("杰", "Jie"),
    ("涛", "Tao"),
    ("明", "Ming"),
    ("超", "Chao"),
    ("秀英", "Xiuying"),
    ("建国", "Jianguo"),
    ("志强", "Zhiqiang"),
    ("桂兰", "Guilan"),
)
# (area code, Chinese address prefix, English address prefix)
_AREAS = (
    ("110101", "北京市东城区", "Dongcheng District, Beijing"),
    ("310106", "浙江省杭州市西湖区", "Xihu District, Hangzhou, Zhejiang"),
    ("440106", "广东省广州市天河区", "Tianhe District, Guangzhou, Guangdong"),
    ("510107", "四川省成都市武侯区", "Wuhou District, Chengdu, Sichuan"),
    ("320102", "江苏省南京市玄武区", "Xuanwu District, Nanjing, Jiangsu"),
    ("420106", "湖北省武汉市武昌区", "Wuchang District, Wuhan, Hubei"),
)
_STREETS = (
    ("人民路", "Renmin Rd"),
    ("解放路", "Jiefang Rd"),
    ("中山路", "Zhongshan Rd"),
    ("建设路", "Jianshe Rd"),
    ("和平街", "Heping St"),
)
_PHONE_PREFIXES = ("138", "139", "135", "136", "150", "158", "186", "189", "177")


def resident_id_check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character for the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def resident_id_valid(number: str) -> bool:
    if len(number) != 18 or not number[:17].isdigit():
        return False
    return resident_id_check_char(number[:17]) == number[17].upper()


def resident_id(rng: random.Random, area_code: str, birth: date, male: bool) -> str:
    sequence = rng.randrange(0, 500) * 2 + (1 if male else 0)
    first17 = f"{area_code}{birth:%Y%m%d}{sequence:03d}"
    return first17 + resident_id_check_char(first17)


def person_name(rng: random.Random, language: str) -> str:
    surname = rng.choice(_SURNAMES)
    given = rng.choice(_GIVEN)
    return surname[0] + given[0] if language == "zh" else f"{given[1]} {surname[1]}"


def phone(rng: random.Random) -> str:
    return rng.choice(_PHONE_PREFIXES) + f"{rng.randrange(10**8):08d}"


def area(rng: random.Random) -> tuple[str, str, str]:
    return rng.choice(_AREAS)


def address(rng: random.Random, chosen_area: tuple[str, str, str], language: str) -> str:
    street = rng.choice(_STREETS)
    number = rng.randrange(1, 400)
    if language == "zh":
        return f"{chosen_area[1]}{street[0]}{number}号"
    return f"No. {number} {street[1]}, {chosen_area[2]}"
