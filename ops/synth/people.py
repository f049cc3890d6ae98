"""Invented identities: names, resident ID numbers, phones and addresses.

Resident ID numbers follow GB 11643-1999: six-digit area code, birth date,
three-digit sequence (odd for men), and an ISO 7064 MOD 11-2 check character.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from dataclasses import dataclass
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


# ---------------------------------------------------------------------------
# Richer names for the identities planted in free text (see `ops.synth.phi`).
# `person_name` above is kept as it is: its draws are part of every patient's
# clinical random stream, so changing it would change every later draw.


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    """`"伟:wei 强:qiang"` -> ((伟, wei), (强, qiang))."""
    return tuple((pair.split(":")[0], pair.split(":")[1]) for pair in text.split())


# (surname, pinyin, weight in per mille of the population, roughly)
_SURNAMES_WEIGHTED = (
    ("王", "Wang", 71),
    ("李", "Li", 70),
    ("张", "Zhang", 68),
    ("刘", "Liu", 54),
    ("陈", "Chen", 46),
    ("杨", "Yang", 31),
    ("黄", "Huang", 23),
    ("赵", "Zhao", 22),
    ("吴", "Wu", 21),
    ("周", "Zhou", 20),
    ("徐", "Xu", 17),
    ("孙", "Sun", 15),
    ("马", "Ma", 15),
    ("朱", "Zhu", 13),
    ("胡", "Hu", 13),
    ("郭", "Guo", 12),
    ("何", "He", 12),
    ("高", "Gao", 11),
    ("林", "Lin", 11),
    ("罗", "Luo", 10),
    ("郑", "Zheng", 10),
    ("梁", "Liang", 9),
    ("谢", "Xie", 8),
    ("宋", "Song", 7),
    ("唐", "Tang", 7),
    ("许", "Xu", 7),
    ("韩", "Han", 6),
    ("冯", "Feng", 6),
    ("邓", "Deng", 6),
    ("曹", "Cao", 6),
    ("彭", "Peng", 5),
    ("曾", "Zeng", 5),
    ("肖", "Xiao", 5),
    ("田", "Tian", 5),
    ("董", "Dong", 5),
    ("袁", "Yuan", 4),
    ("潘", "Pan", 4),
    ("于", "Yu", 4),
    ("蒋", "Jiang", 4),
    ("蔡", "Cai", 4),
    ("余", "Yu", 4),
    ("杜", "Du", 4),
    ("叶", "Ye", 4),
    ("程", "Cheng", 4),
    ("苏", "Su", 3),
    ("魏", "Wei", 3),
    ("吕", "Lyu", 3),
    ("丁", "Ding", 3),
    ("任", "Ren", 3),
    ("沈", "Shen", 3),
    ("姚", "Yao", 3),
    ("卢", "Lu", 3),
    ("姜", "Jiang", 3),
    ("崔", "Cui", 3),
    ("钟", "Zhong", 3),
    ("谭", "Tan", 3),
    ("陆", "Lu", 3),
    ("汪", "Wang", 3),
    ("范", "Fan", 3),
    ("金", "Jin", 3),
    ("石", "Shi", 2),
    ("廖", "Liao", 2),
    ("贾", "Jia", 2),
    ("夏", "Xia", 2),
    ("韦", "Wei", 2),
    ("付", "Fu", 2),
    ("方", "Fang", 2),
    ("白", "Bai", 2),
    ("邹", "Zou", 2),
    ("孟", "Meng", 2),
    ("熊", "Xiong", 2),
    ("秦", "Qin", 2),
    ("邱", "Qiu", 2),
    ("江", "Jiang", 2),
    ("尹", "Yin", 2),
    ("薛", "Xue", 2),
    ("闫", "Yan", 2),
    ("段", "Duan", 2),
    ("雷", "Lei", 2),
    ("侯", "Hou", 2),
    ("龙", "Long", 2),
    ("史", "Shi", 2),
    ("陶", "Tao", 2),
    ("黎", "Li", 2),
    ("贺", "He", 2),
    ("顾", "Gu", 2),
    ("毛", "Mao", 2),
    ("郝", "Hao", 2),
    ("龚", "Gong", 2),
    ("邵", "Shao", 2),
    ("万", "Wan", 2),
    ("钱", "Qian", 2),
    ("严", "Yan", 2),
    ("覃", "Qin", 1),
    ("武", "Wu", 1),
    ("戴", "Dai", 1),
    ("莫", "Mo", 1),
    ("孔", "Kong", 1),
    ("向", "Xiang", 1),
    ("汤", "Tang", 1),
    ("欧阳", "Ouyang", 1),
    ("上官", "Shangguan", 1),
    ("司马", "Sima", 1),
    ("诸葛", "Zhuge", 1),
)
_SURNAME_CUM = tuple(
    sum(s[2] for s in _SURNAMES_WEIGHTED[: i + 1]) for i in range(len(_SURNAMES_WEIGHTED))
)
_GIVEN_MALE = _pairs(
    "伟:wei 强:qiang 磊:lei 军:jun 勇:yong 杰:jie 涛:tao 明:ming 超:chao 刚:gang "
    "平:ping 辉:hui 鹏:peng 华:hua 飞:fei 鑫:xin 波:bo 斌:bin 宇:yu 浩:hao 凯:kai "
    "健:jian 俊:jun 帆:fan 帅:shuai 旭:xu 宁:ning 龙:long 林:lin 阳:yang 建:jian "
    "国:guo 志:zhi 文:wen 德:de 海:hai 春:chun 永:yong 庆:qing 东:dong 成:cheng "
    "荣:rong 金:jin 福:fu 生:sheng 祥:xiang 忠:zhong 良:liang 新:xin 振:zhen 家:jia "
    "峰:feng 博:bo 子:zi 轩:xuan 泽:ze 昊:hao 天:tian 晨:chen 嘉:jia 卫:wei 兵:bing "
    "宏:hong 亮:liang 清:qing 贵:gui 山:shan 树:shu 民:min 仁:ren 安:an 元:yuan 胜:sheng"
)
_GIVEN_FEMALE = _pairs(
    "芳:fang 娜:na 敏:min 静:jing 丽:li 艳:yan 秀:xiu 英:ying 霞:xia 燕:yan 玲:ling "
    "桂:gui 兰:lan 萍:ping 红:hong 梅:mei 琳:lin 莉:li 婷:ting 雪:xue 慧:hui 颖:ying "
    "倩:qian 洁:jie 琴:qin 云:yun 凤:feng 珍:zhen 玉:yu 淑:shu 华:hua 丹:dan 月:yue "
    "欣:xin 悦:yue 佳:jia 怡:yi 晶:jing 蕾:lei 薇:wei 璐:lu 瑶:yao 雯:wen 彤:tong "
    "琪:qi 冬:dong 春:chun 小:xiao 美:mei 爱:ai 翠:cui 娟:juan 荣:rong 素:su 文:wen "
    "秋:qiu 菊:ju 莲:lian 香:xiang 宁:ning 安:an 蓉:rong 晓:xiao"
)
# classic given names of people born 1930-1970, as whole units
_GIVEN_CLASSIC_MALE = (
    ("建国", "jianguo"),
    ("建华", "jianhua"),
    ("国强", "guoqiang"),
    ("志强", "zhiqiang"),
    ("卫东", "weidong"),
    ("红军", "hongjun"),
    ("德明", "deming"),
    ("永福", "yongfu"),
    ("国庆", "guoqing"),
    ("振华", "zhenhua"),
)
_GIVEN_CLASSIC_FEMALE = (
    ("秀英", "xiuying"),
    ("桂兰", "guilan"),
    ("桂英", "guiying"),
    ("玉兰", "yulan"),
    ("秀兰", "xiulan"),
    ("凤英", "fengying"),
    ("淑珍", "shuzhen"),
    ("美华", "meihua"),
    ("丽华", "lihua"),
    ("红梅", "hongmei"),
)
_FIRST_ONLY = frozenset("小子晓家天嘉")  # only ever the first of two characters
_WESTERN_MALE = _words(
    "James John Robert Michael William David Richard Joseph Thomas Charles Daniel "
    "Matthew Anthony Mark Paul Steven Andrew Kenneth George Edward Peter Brian Kevin "
    "Ronald Timothy Patrick Stephen Henry Arthur Albert Simon Graham Nigel Colin Ian"
)
_WESTERN_FEMALE = _words(
    "Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen "
    "Margaret Nancy Helen Sandra Dorothy Ruth Carol Sharon Michelle Laura Emily Anne "
    "Catherine Alice Joan Grace Rose Evelyn Jean Frances Gillian Fiona Janet Claire"
)
_WESTERN_SURNAMES = _words(
    "Smith Johnson Williams Brown Jones Miller Davis Wilson Taylor Anderson Thomas "
    "Moore Martin Jackson Thompson White Harris Clark Lewis Robinson Walker Young "
    "Allen King Wright Scott Green Baker Adams Nelson Hill Campbell Mitchell Roberts "
    "Carter Phillips Evans Turner Parker Collins Edwards Stewart Morris Murphy Cook "
    "Rogers O'Brien O'Connor McDonald Fitzgerald Sullivan Kelly Hughes Bennett Wood "
    "Gray Fletcher Lawson Harrington Whitfield Pemberton"
)
_INDIAN_MALE = _words("Rajesh Arjun Vikram Suresh Anil Ravi Sanjay Manoj Prakash Ramesh")
_INDIAN_FEMALE = _words("Priya Anita Lakshmi Kavitha Deepa Meena Sunita Geeta Radha Shanti")
_INDIAN_SURNAMES = _words("Kumar Nair Patel Sharma Singh Menon Pillai Reddy Iyer Gupta")
_MALAY_MALE = _words("Ahmad Muhammad Ismail Hassan Rahman Aziz Hamzah Yusof Osman Razak")
_MALAY_FEMALE = _words("Siti Nurul Aisyah Fatimah Zainab Noraini Rohani Salmah Aminah Halimah")


@dataclass(frozen=True)
class Name:
    """One person's name and how it is written.

    `family` and `given` are as written in the name's own script; `style` is
    "zh" (Chinese characters), "pinyin", "western", "indian" or "malay".
    """

    family: str
    given: str
    style: str
    male: bool

    @property
    def full(self) -> str:
        """The canonical spelling, as the patient master index stores it."""
        if self.style == "zh":
            return self.family + self.given
        return f"{self.given} {self.family}"  # Malay: `Ahmad bin Ismail`

    @property
    def surname_first(self) -> str:
        """`WANG, Jianguo` (not for Malay names, which have no surname)."""
        if self.style in ("zh", "malay"):
            return self.full
        return f"{self.family.upper()}, {self.given}"

    @property
    def initial_form(self) -> str:
        """`J. Wang`, `王建国` for Chinese script."""
        if self.style in ("zh", "malay"):
            return self.full
        return f"{self.given[0]}. {self.family}"

    @property
    def address_form(self) -> str:
        """What follows Mr/Mrs: the surname, or the given name for a Malay name."""
        return self.given if self.style == "malay" else self.family


def _surname_zh(rng: random.Random) -> tuple[str, str]:
    """A surname, as common as it is in China: 王 one in fourteen, 诸葛 rare."""
    surname = _SURNAMES_WEIGHTED[bisect_right(_SURNAME_CUM, rng.random() * _SURNAME_CUM[-1])]
    return surname[0], surname[1]


def _given_zh(rng: random.Random, male: bool) -> tuple[str, str]:
    roll = rng.random()
    if roll < 0.12:
        return rng.choice(_GIVEN_CLASSIC_MALE if male else _GIVEN_CLASSIC_FEMALE)
    pool = _GIVEN_MALE if male else _GIVEN_FEMALE
    first = rng.choice(pool)
    if roll < 0.42 and first[0] not in _FIRST_ONLY:
        return first[0], first[1]
    second = rng.choice(pool)
    while second[0] == first[0]:
        second = rng.choice(pool)
    joint = "'" if second[1][0] in "aeo" else ""  # Xi'an, not Xian
    return first[0] + second[0], first[1] + joint + second[1]


def chinese_name(rng: random.Random, male: bool, *, romanised: bool = False) -> Name:
    """A Chinese name; `romanised` gives its pinyin (`Jianguo Wang`)."""
    family = _surname_zh(rng)
    given = _given_zh(rng, male)
    if romanised:
        return Name(family[1], given[1].capitalize(), "pinyin", male)
    return Name(family[0], given[0], "zh", male)


def english_name(rng: random.Random, male: bool) -> Name:
    """A name as an international hospital's patients have them: Western,
    Chinese in pinyin, Indian or Malay."""
    roll = rng.random()
    if roll < 0.42:
        given = rng.choice(_WESTERN_MALE if male else _WESTERN_FEMALE)
        return Name(rng.choice(_WESTERN_SURNAMES), given, "western", male)
    if roll < 0.82:
        return chinese_name(rng, male, romanised=True)
    if roll < 0.92:
        given = rng.choice(_INDIAN_MALE if male else _INDIAN_FEMALE)
        return Name(rng.choice(_INDIAN_SURNAMES), given, "indian", male)
    given = rng.choice(_MALAY_MALE if male else _MALAY_FEMALE)
    father = rng.choice(_MALAY_MALE)
    return Name(f"{'bin' if male else 'binti'} {father}", given, "malay", male)


def any_name(rng: random.Random, language: str, male: bool) -> Name:
    return english_name(rng, male) if language == "en" else chinese_name(rng, male)


def family(rng: random.Random, patient: Name) -> list[tuple[str, Name]]:
    """The patient's spouse and one or two grown children: (relation, name).

    Children carry their father's family name (Chinese and pinyin names) or the
    family name (others); a Malay child is `bin`/`binti` the father's name.
    """
    spouse_male = not patient.male
    if patient.style == "zh":
        spouse = chinese_name(rng, spouse_male)
    elif patient.style == "western" and rng.random() < 0.7:
        spouse = Name(
            patient.family, rng.choice(_western_pool(spouse_male)), "western", spouse_male
        )
    elif patient.style == "pinyin":
        spouse = chinese_name(rng, spouse_male, romanised=True)
    elif patient.style == "indian":
        given = rng.choice(_INDIAN_MALE if spouse_male else _INDIAN_FEMALE)
        surname = patient.family if rng.random() < 0.7 else rng.choice(_INDIAN_SURNAMES)
        spouse = Name(surname, given, "indian", spouse_male)
    elif patient.style == "malay":
        given = rng.choice(_MALAY_MALE if spouse_male else _MALAY_FEMALE)
        elder = rng.choice(_MALAY_MALE)
        spouse = Name(f"{'bin' if spouse_male else 'binti'} {elder}", given, "malay", spouse_male)
    else:
        spouse = english_name(rng, spouse_male)
    father = patient if patient.male else spouse
    members = [("spouse", spouse)]
    for _ in range(rng.choice((1, 1, 2))):
        male = rng.random() < 0.5
        members.append(("son" if male else "daughter", _child(rng, father, male)))
    return members


def _western_pool(male: bool) -> tuple[str, ...]:
    return _WESTERN_MALE if male else _WESTERN_FEMALE


def _child(rng: random.Random, father: Name, male: bool) -> Name:
    if father.style == "zh":
        return Name(father.family, _given_zh(rng, male)[0], "zh", male)
    if father.style == "pinyin":
        return Name(father.family, _given_zh(rng, male)[1].capitalize(), "pinyin", male)
    if father.style == "malay":
        given = rng.choice(_MALAY_MALE if male else _MALAY_FEMALE)
        return Name(f"{'bin' if male else 'binti'} {father.given}", given, "malay", male)
    if father.style == "indian":
        given = rng.choice(_INDIAN_MALE if male else _INDIAN_FEMALE)
        return Name(father.family, given, "indian", male)
    return Name(father.family, rng.choice(_western_pool(male)), "western", male)
