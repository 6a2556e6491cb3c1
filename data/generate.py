"""Generate a seeded set of short synthetic Chinese admission records with gold fields.

Every name, date, value and sentence comes from the pools in this file, so the set contains no patient data.
The same seed and counts always produce byte-identical files. Standard library only::

    python data/generate.py --seed 0 --train 160 --dev 40 --out data/
    python data/generate.py --seed 0 --train 160 --dev 40 --out /tmp/admission --schema admission

Each output line is ``{"id", "text", "fields"}``. ``fields`` follows ``schemas/basic_info.json`` by default
and ``schemas/admission.json`` with ``--schema admission``. The record texts are the same for both schemas.
Grounded values (name, department, diagnoses, drug names) are copied verbatim from the record text.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

MIN_CHARS = 150
MAX_CHARS = 400
"""Record length bounds, in characters. Short records keep a LoRA demo on a small CPU fast."""

BASIC_FIELDS = ("姓名", "性别", "年龄", "科别", "入院诊断")
ADMISSION_FIELDS = ("姓名", "性别", "年龄", "科别", "入院日期", "主诉", "现病史", "既往史", "过敏史", "生命体征", "入院诊断", "用药")

class StableRandom:
    """Seeded draws built only on ``random.Random.random()``.

    The "Notes on Reproducibility" in the Python ``random`` docs promise that ``random()`` returns the same
    sequence for the same seed in later versions, but they make no such promise for ``choice``, ``randint`` or
    ``sample``. Building every draw on ``random()`` keeps the committed files reproducible across versions.
    """

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def random(self) -> float:
        return self._random.random()

    def randint(self, low: int, high: int) -> int:
        """Return an integer in ``[low, high]``, both ends included."""
        return low + min(int(self._random.random() * (high - low + 1)), high - low)

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self._random.random()

    def choice(self, items: Sequence[T]) -> T:
        return items[self.randint(0, len(items) - 1)]

    def sample(self, items: Sequence[T], count: int) -> list[T]:
        """Return ``count`` distinct items in random order (a partial Fisher-Yates shuffle)."""
        pool = list(items)
        for i in range(count):
            j = self.randint(i, len(pool) - 1)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:count]


# --- name pools --------------------------------------------------------------------------------------------

SURNAMES = (
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "高",
    "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾", "肖", "田", "董", "袁",
    "潘", "蒋", "蔡", "余", "杜", "叶", "程", "苏", "魏", "吕", "丁", "任", "沈", "姚", "卢", "姜", "崔", "钟",
    "谭", "陆", "汪", "范", "金", "石", "廖", "贾", "夏", "韦", "方", "白", "邹", "孟", "熊", "秦", "邱", "江",
    "欧阳", "司马", "上官", "诸葛",
)
GIVEN_MALE = (
    "建国", "志强", "海峰", "国平", "永明", "德胜", "文斌", "俊杰", "宏伟", "振华", "立新", "浩然", "子轩", "宇航",
    "明", "伟", "军", "勇", "涛", "斌", "磊", "超", "刚", "鹏", "昊天", "博文", "家豪", "学良", "长青", "福生",
)
GIVEN_FEMALE = (
    "秀英", "桂兰", "丽娜", "美华", "淑珍", "晓燕", "玉梅", "海燕", "春梅", "雅婷", "欣怡", "梓涵", "思琪", "慧敏",
    "芳", "娟", "敏", "静", "丽", "艳", "霞", "萍", "红", "琳", "凤英", "雪梅", "佳怡", "若曦", "文静", "秋菊",
)

# --- clinical pools ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drug:
    name: str
    dose: str
    route: str
    frequency: str


@dataclass(frozen=True)
class Complaint:
    """A presenting problem with the diagnoses, exam findings and drugs that fit it."""

    symptom: str
    """Symptom phrase of the chief complaint."""
    course: str
    """``short`` ("咳嗽3天"), ``long`` ("视物模糊2年") or ``relapse`` ("反复胸痛2年，加重3天")."""
    details: tuple[str, ...]
    """Sentences that may follow the onset clause of the history of present illness."""
    diagnoses: tuple[str, ...]
    """Main admission diagnoses that fit the complaint."""
    exam: str
    drugs: tuple[Drug, ...]
    onset: str = ""
    """Onset clause of the history of present illness. Empty means a trigger, "出现" and the symptom."""
    ages: tuple[int, int] | None = None
    """Age range in years where narrower than the department's."""
    sexes: str = ""
    """Possible sexes where narrower than the department's."""


@dataclass(frozen=True)
class Department:
    names: tuple[str, ...]
    """Surface forms of the department or ward, each usable verbatim as the 科别 value."""
    ages: tuple[int, int]
    sexes: str
    complaints: tuple[Complaint, ...]


def _drugs(*texts: str) -> tuple[Drug, ...]:
    """Parse drug orders written as "name dose route frequency"."""
    return tuple(Drug(*text.split()) for text in texts)


DEPARTMENTS: tuple[Department, ...] = (
    Department(("心内科", "心血管内科", "心内科一病区", "心血管内科二病区"), (45, 88), "男女", (
        Complaint(
            "胸闷、胸痛", "relapse", ("活动后加重，休息数分钟可缓解。", "伴大汗，含服硝酸甘油后缓解。"),
            ("冠状动脉粥样硬化性心脏病", "不稳定型心绞痛", "冠心病（稳定型心绞痛，心功能Ⅱ级）", "急性非ST段抬高型心肌梗死"),
            "双肺呼吸音清，心率齐，未闻及杂音。",
            _drugs("阿司匹林肠溶片 100mg 口服 qd", "硫酸氢氯吡格雷片 75mg 口服 qd", "阿托伐他汀钙片 20mg 口服 qn"),
        ),
        Complaint(
            "心悸", "relapse", ("呈阵发性，持续数分钟至数小时不等。", "无黑矇、晕厥。"),
            ("阵发性心房颤动", "阵发性室上性心动过速", "频发室性早搏"),
            "心律不齐，各瓣膜听诊区未闻及病理性杂音。",
            _drugs("美托洛尔缓释片 47.5mg 口服 qd", "利伐沙班片 15mg 口服 qd"),
        ),
        Complaint(
            "活动后气促", "long", ("夜间不能平卧，伴双下肢水肿。", "爬两层楼即感气促。"),
            ("慢性心力衰竭（心功能Ⅲ级）", "慢性心力衰竭急性加重（心功能Ⅳ级）"),
            "双肺底可闻及少许湿啰音，双下肢轻度水肿。",
            _drugs("呋塞米片 20mg 口服 qd", "螺内酯片 20mg 口服 qd", "沙库巴曲缬沙坦钠片 50mg 口服 bid"),
        ),
    )),
    Department(("呼吸内科", "呼吸与危重症医学科", "呼吸内科二病区"), (18, 90), "男女", (
        Complaint(
            "咳嗽、咳痰伴发热", "short", ("体温最高39.0℃，咳黄痰。", "伴畏寒，无咯血。"),
            ("社区获得性肺炎", "肺炎（右下肺，非重症）"),
            "双肺呼吸音粗，右下肺可闻及湿啰音。",
            _drugs("左氧氟沙星氯化钠注射液 0.5g 静滴 qd", "注射用头孢曲松钠 2g 静滴 qd", "盐酸氨溴索注射液 30mg 静推 bid"),
        ),
        Complaint(
            "咳嗽、咳痰", "relapse", ("每年冬春季加重，咳白色黏痰。", "伴活动后气促。"),
            ("慢性阻塞性肺疾病急性加重", "慢性支气管炎急性发作"),
            "桶状胸，双肺呼吸音低，可闻及散在干啰音。",
            _drugs("布地奈德混悬液 1mg 雾化吸入 bid", "多索茶碱注射液 0.2g 静滴 qd", "盐酸氨溴索注射液 30mg 静推 bid"),
            ages=(50, 90),
        ),
        Complaint(
            "喘息", "relapse", ("接触冷空气后诱发。", "夜间明显，可闻及喘鸣音。"),
            ("支气管哮喘（急性发作期，中度）",),
            "双肺可闻及散在哮鸣音。",
            _drugs("布地奈德混悬液 1mg 雾化吸入 bid", "甲泼尼龙琥珀酸钠 40mg 静滴 qd"),
            ages=(18, 65),
        ),
        Complaint(
            "咯血", "short", ("为鲜红色血痰，每日数口。", "无胸痛，无发热。"),
            ("支气管扩张伴咯血",),
            "左下肺可闻及固定湿啰音。",
            _drugs("氨甲环酸注射液 1g 静滴 qd", "注射用头孢曲松钠 2g 静滴 qd"),
        ),
    )),
    Department(("内分泌科", "内分泌代谢科", "内分泌科病区"), (18, 85), "男女", (
        Complaint(
            "口干、多饮、多尿", "long", ("每日饮水约3000ml。", "近半年体重下降约5kg。"),
            ("2型糖尿病", "2型糖尿病（伴周围神经病变，糖尿病肾病Ⅲ期）"),
            "心肺无殊，双足背动脉搏动减弱。",
            _drugs("盐酸二甲双胍片 0.5g 口服 tid", "门冬胰岛素注射液 6U 皮下注射 tid", "甘精胰岛素注射液 12U 皮下注射 qn"),
            ages=(30, 85),
        ),
        Complaint(
            "恶心、呕吐伴乏力", "short", ("自测随机血糖22mmol/L。", "伴口干、多尿。"),
            ("糖尿病酮症",),
            "皮肤干燥，呼吸深快，可闻及烂苹果味。",
            _drugs("胰岛素注射液 4U 静滴 q1h", "氯化钾缓释片 1g 口服 tid"),
        ),
        Complaint(
            "心悸、多汗、消瘦", "long", ("伴怕热、易怒。", "食欲亢进，大便次数增多。"),
            ("甲状腺功能亢进症", "Graves病"),
            "甲状腺Ⅱ度肿大，质软，无压痛。",
            _drugs("甲巯咪唑片 10mg 口服 bid", "盐酸普萘洛尔片 10mg 口服 tid"),
            ages=(18, 60),
        ),
        Complaint(
            "腰背痛", "long", ("翻身及起坐时加重。", "身高较前变矮约3cm。"),
            ("原发性骨质疏松症",),
            "胸腰段脊柱叩击痛阳性。",
            _drugs("碳酸钙D3片 0.6g 口服 qd", "阿仑膦酸钠片 70mg 口服 qw"),
            ages=(55, 88),
        ),
    )),
    Department(("消化内科", "消化科", "消化内科三病区"), (20, 85), "男女", (
        Complaint(
            "黑便", "short", ("每日2～3次，伴头晕、乏力。", "无呕血，无腹痛。"),
            ("上消化道出血", "十二指肠球部溃疡伴出血"),
            "睑结膜苍白，上腹部轻压痛，肠鸣音活跃。",
            _drugs("注射用奥美拉唑钠 40mg 静滴 q12h", "醋酸奥曲肽注射液 0.1mg 皮下注射 q8h"),
        ),
        Complaint(
            "上腹痛", "relapse", ("空腹时明显，进食后缓解。", "伴反酸、嗳气。"),
            ("十二指肠球部溃疡", "慢性胃炎"),
            "腹软，上腹部轻压痛，无反跳痛。",
            _drugs("雷贝拉唑钠肠溶片 20mg 口服 qd", "铝碳酸镁咀嚼片 1g 口服 tid"),
        ),
        Complaint(
            "腹痛、腹泻", "short", ("每日解稀水样便5～6次。", "伴低热，无黏液脓血便。"),
            ("急性胃肠炎",),
            "腹平软，脐周轻压痛，肠鸣音活跃。",
            _drugs("蒙脱石散 3g 口服 tid", "双歧杆菌三联活菌胶囊 420mg 口服 bid"),
        ),
        Complaint(
            "腹胀、乏力", "long", ("伴尿量减少，双下肢水肿。", "皮肤巩膜轻度黄染。"),
            ("肝硬化失代偿期（乙肝后，Child-Pugh B级）",),
            "腹部膨隆，移动性浊音阳性。",
            _drugs("螺内酯片 40mg 口服 qd", "呋塞米片 20mg 口服 qd", "恩替卡韦片 0.5mg 口服 qd"),
            ages=(35, 80),
        ),
    )),
    Department(("神经内科", "神经内科卒中单元", "神经内科二病区"), (40, 90), "男女", (
        Complaint(
            "左侧肢体无力", "short", ("伴言语含糊，无头痛、呕吐。", "行走向左侧偏斜。"),
            ("急性脑梗死", "急性脑梗死（右侧基底节区，小动脉闭塞型）"),
            "左侧肢体肌力4级，左侧巴氏征阳性。",
            _drugs("阿司匹林肠溶片 100mg 口服 qd", "阿托伐他汀钙片 40mg 口服 qn", "丁苯酞软胶囊 0.2g 口服 tid"),
        ),
        Complaint(
            "头晕", "relapse", ("呈天旋地转感，伴恶心。", "与体位变化有关。"),
            ("良性阵发性位置性眩晕", "后循环缺血"),
            "神清，颈软，四肢肌力5级，病理征阴性。",
            _drugs("甲磺酸倍他司汀片 12mg 口服 tid", "盐酸氟桂利嗪胶囊 5mg 口服 qn"),
        ),
        Complaint(
            "右侧肢体麻木", "short", ("无意识障碍，无肢体抽搐。", "持续约半小时后缓解。"),
            ("短暂性脑缺血发作", "急性脑梗死（左侧丘脑）"),
            "右侧肢体针刺觉减退，肌力5级。",
            _drugs("阿司匹林肠溶片 100mg 口服 qd", "硫酸氢氯吡格雷片 75mg 口服 qd"),
        ),
    )),
    Department(("骨科", "骨科一病区", "骨科二病区"), (18, 90), "男女", (
        Complaint(
            "跌倒致右髋部疼痛、活动受限", "short", ("不能站立及行走。", "无昏迷，无头痛。"),
            ("右股骨颈骨折", "右股骨粗隆间骨折（EvansⅡ型）"),
            "右下肢外旋短缩畸形，纵向叩击痛阳性。",
            _drugs("依诺肝素钠注射液 4000AxaIU 皮下注射 qd", "塞来昔布胶囊 0.2g 口服 bid"),
            onset="在家中滑倒，右髋部着地", ages=(60, 92),
        ),
        Complaint(
            "腰痛伴左下肢放射痛", "relapse", ("久坐后加重，卧床休息可缓解。", "伴左足背麻木。"),
            ("腰椎间盘突出症（L4/5，左侧）",),
            "L4/5棘突旁压痛，左直腿抬高试验阳性。",
            _drugs("塞来昔布胶囊 0.2g 口服 bid", "甲钴胺片 0.5mg 口服 tid"),
            ages=(25, 75),
        ),
        Complaint(
            "双膝关节疼痛", "long", ("上下楼梯时明显。", "晨起僵硬约10分钟。"),
            ("双膝骨关节炎",),
            "双膝关节内侧压痛，活动时可及骨擦感。",
            _drugs("塞来昔布胶囊 0.2g 口服 qd", "硫酸氨基葡萄糖胶囊 0.5g 口服 tid"),
            ages=(50, 85),
        ),
        Complaint(
            "摔伤致左腕部肿痛", "short", ("腕关节活动受限。", "无手指麻木。"),
            ("桡骨远端骨折（左侧）",),
            "左腕部肿胀，呈餐叉样畸形，压痛明显。",
            _drugs("洛索洛芬钠片 60mg 口服 tid",),
            onset="行走时不慎摔倒，左手撑地",
        ),
    )),
    Department(("妇科", "妇科病区", "妇产科"), (18, 75), "女", (
        Complaint(
            "体检发现盆腔包块", "long", ("无腹痛，无异常阴道流血。", "无尿频尿急。"),
            ("卵巢囊肿", "左侧卵巢子宫内膜异位囊肿", "右侧卵巢畸胎瘤"),
            "左侧附件区扪及囊性包块，活动度可。",
            _drugs("头孢呋辛酯片 0.25g 口服 bid",),
            onset="体检行妇科超声发现盆腔包块", ages=(18, 60),
        ),
        Complaint(
            "月经量增多", "long", ("经期延长至10天。", "伴头晕、乏力。"),
            ("子宫多发性平滑肌瘤", "异常子宫出血"),
            "子宫前位，增大如孕10周，质硬。",
            _drugs("琥珀酸亚铁片 0.1g 口服 tid", "氨甲环酸注射液 1g 静滴 qd"),
            ages=(25, 52),
        ),
        Complaint(
            "绝经后阴道流血", "short", ("量少，色暗红。", "无腹痛。"),
            ("绝经后阴道流血待查", "子宫内膜增厚"),
            "宫颈光滑，子宫正常大小，双附件未及异常。",
            _drugs("氨甲环酸注射液 1g 静滴 qd",),
            onset="无明显诱因出现阴道流血", ages=(50, 75),
        ),
    )),
    Department(("儿科", "儿科病区", "小儿内科"), (0, 13), "男女", (
        Complaint(
            "发热、咳嗽", "short", ("体温最高39.5℃，咳嗽阵发性。", "无气喘，无呕吐。"),
            ("支气管肺炎", "急性支气管炎"),
            "咽充血，双肺呼吸音粗，可闻及细湿啰音。",
            _drugs("阿莫西林克拉维酸钾颗粒 0.2g 口服 bid", "布洛芬混悬液 5ml 口服 prn"),
        ),
        Complaint(
            "发热伴抽搐1次", "short", ("抽搐持续约2分钟自行缓解。", "抽搐后精神可。"),
            ("热性惊厥（单纯型）",),
            "神清，颈软，克氏征、布氏征阴性。",
            _drugs("布洛芬混悬液 5ml 口服 prn", "地西泮注射液 3mg 静推 prn"),
            onset="无明显诱因出现发热，体温高峰时抽搐1次", ages=(1, 5),
        ),
        Complaint(
            "呕吐、腹泻", "short", ("每日解蛋花样便6～7次。", "尿量稍减少。"),
            ("急性胃肠炎伴轻度脱水", "轮状病毒肠炎"),
            "神清，前囟平，皮肤弹性稍差。",
            _drugs("口服补液盐Ⅲ 250ml 口服 prn", "蒙脱石散 1.5g 口服 tid"),
        ),
        Complaint(
            "发热、咽痛", "short", ("体温最高39.2℃。", "进食时咽痛明显。"),
            ("急性化脓性扁桃体炎", "急性上呼吸道感染"),
            "咽充血，双侧扁桃体Ⅱ度肿大，可见脓性分泌物。",
            _drugs("注射用头孢呋辛钠 0.75g 静滴 bid", "布洛芬混悬液 5ml 口服 prn"),
            ages=(3, 13),
        ),
    )),
    Department(("肿瘤科", "肿瘤内科", "放疗科"), (35, 85), "男女", (
        Complaint(
            "确诊肺腺癌", "long", ("既往化疗耐受可。", "目前一般情况可，ECOG评分1分。"),
            ("右肺下叶腺癌（cT2aN2M1c，ⅣB期）", "左肺上叶腺癌（ⅢA期，EGFR 21外显子L858R突变）"),
            "浅表淋巴结未及肿大，右下肺呼吸音稍低。",
            _drugs("甲磺酸奥希替尼片 80mg 口服 qd", "盐酸昂丹司琼注射液 8mg 静推 qd"),
            onset="因咳嗽行胸部CT发现肺部占位，穿刺病理示腺癌",
        ),
        Complaint(
            "结肠癌术后", "long", ("术后恢复可。", "无腹痛、便血。"),
            ("乙状结肠腺癌术后（pT3N1M0，ⅢB期）",),
            "腹部见陈旧手术瘢痕，愈合良好。",
            _drugs("卡培他滨片 1.5g 口服 bid", "盐酸昂丹司琼注射液 8mg 静推 qd"),
            onset="因便血行肠镜检查发现结肠肿物，行根治术",
        ),
    )),
    Department(("眼科", "眼科病区"), (20, 90), "男女", (
        Complaint(
            "右眼视物模糊", "long", ("无眼红、眼痛。", "无视物变形。"),
            ("右眼年龄相关性白内障",),
            "右眼晶状体皮质及核混浊，眼底窥不清。",
            _drugs("左氧氟沙星滴眼液 1滴 滴眼 qid", "普拉洛芬滴眼液 1滴 滴眼 qid"),
            ages=(50, 90),
        ),
        Complaint(
            "左眼胀痛伴视力下降", "short", ("伴同侧头痛、恶心。", "看灯光有虹视。"),
            ("急性闭角型青光眼（左眼）",),
            "左眼角膜雾状水肿，前房浅，瞳孔中度散大。",
            _drugs("甘露醇注射液 250ml 静滴 qd", "盐酸卡替洛尔滴眼液 1滴 滴眼 bid"),
            ages=(45, 85),
        ),
        Complaint(
            "双眼视力下降", "long", ("无眼痛，无视物变形。", "血糖控制不佳。"),
            ("双眼糖尿病视网膜病变",),
            "双眼眼底可见散在微血管瘤及出血点。",
            _drugs("羟苯磺酸钙胶囊 0.5g 口服 tid",),
            ages=(35, 80),
        ),
    )),
    Department(("肾内科", "肾脏内科"), (18, 85), "男女", (
        Complaint(
            "双下肢水肿", "short", ("晨轻暮重，伴尿中泡沫增多。", "无肉眼血尿。"),
            ("肾病综合征", "IgA肾病"),
            "双下肢中度凹陷性水肿。",
            _drugs("醋酸泼尼松片 50mg 口服 qd", "呋塞米片 20mg 口服 bid"),
        ),
        Complaint(
            "发现血肌酐升高", "long", ("伴夜尿增多。", "近期食欲下降。"),
            ("慢性肾脏病5期", "慢性肾脏病4期（高血压肾损害）"),
            "贫血貌，双肾区无叩击痛。",
            _drugs("碳酸氢钠片 1g 口服 tid", "重组人促红素注射液 10000IU 皮下注射 qw"),
            onset="体检发现血肌酐升高", ages=(35, 85),
        ),
    )),
    Department(("普外科", "普通外科", "普外科二病区"), (18, 85), "男女", (
        Complaint(
            "转移性右下腹痛", "short", ("伴恶心，呕吐1次。", "无腹泻。"),
            ("急性阑尾炎",),
            "右下腹麦氏点压痛、反跳痛阳性。",
            _drugs("注射用头孢呋辛钠 1.5g 静滴 bid", "奥硝唑氯化钠注射液 0.5g 静滴 bid"),
        ),
        Complaint(
            "右上腹痛", "relapse", ("进食油腻后加重。", "向右肩背部放射。"),
            ("胆囊结石伴急性胆囊炎",),
            "右上腹压痛，墨菲征阳性。",
            _drugs("注射用头孢哌酮钠舒巴坦钠 2g 静滴 bid", "山莨菪碱注射液 10mg 肌注 prn"),
        ),
        Complaint(
            "右侧腹股沟区可复性包块", "long", ("平卧后可自行回纳。", "无腹痛、呕吐。"),
            ("腹股沟斜疝（右侧）",),
            "站立时右侧腹股沟区可见包块，可回纳，外环口扩大。",
            (),
            onset="站立时发现右侧腹股沟区包块",
        ),
    )),
    Department(("泌尿外科", "泌尿外科病区"), (18, 90), "男女", (
        Complaint(
            "右侧腰部绞痛", "short", ("伴恶心，无发热。", "向右下腹及会阴部放射。"),
            ("右输尿管上段结石伴肾积水",),
            "右肾区叩击痛阳性。",
            _drugs("坦索罗辛缓释胶囊 0.2mg 口服 qn", "山莨菪碱注射液 10mg 肌注 prn"),
        ),
        Complaint(
            "排尿困难", "long", ("伴尿频、夜尿增多。", "尿线变细，排尿费力。"),
            ("良性前列腺增生",),
            "直肠指检：前列腺Ⅱ度增大，质韧，中央沟变浅。",
            _drugs("坦索罗辛缓释胶囊 0.2mg 口服 qn", "非那雄胺片 5mg 口服 qd"),
            ages=(55, 90), sexes="男",
        ),
    )),
)

Comorbidity = tuple[str, str, Drug | None]
"""History sentence template, diagnosis, and the drug usually ordered for it."""

COMORBIDITIES: tuple[Comorbidity, ...] = (
    ("高血压病史{n}年", "高血压病2级", _drugs("苯磺酸氨氯地平片 5mg 口服 qd")[0]),
    ("高血压病史{n}年", "高血压病3级（很高危）", _drugs("缬沙坦胶囊 80mg 口服 qd")[0]),
    ("2型糖尿病病史{n}年", "2型糖尿病", _drugs("盐酸二甲双胍片 0.5g 口服 bid")[0]),
    ("高脂血症病史{n}年", "高脂血症", _drugs("瑞舒伐他汀钙片 10mg 口服 qn")[0]),
    ("慢性乙型病毒性肝炎病史{n}年", "慢性乙型病毒性肝炎", _drugs("恩替卡韦片 0.5mg 口服 qd")[0]),
    ("痛风病史{n}年", "痛风", None),
)
NEGATIVE_HISTORY = (
    "否认高血压、糖尿病史", "否认肝炎、结核等传染病史", "否认手术外伤史", "否认输血史", "否认冠心病史",
)
DENIABLE = ("高血压", "糖尿病", "肝炎", "冠心病")
"""Conditions that a negative history sentence may deny. A record never denies a condition it also reports."""
SURGERY_HISTORY = ("{year}年行“阑尾切除术”", "{year}年行“胆囊切除术”", "{year}年行“剖宫产术”")
ALLERGIES_NEGATIVE = ("否认药物及食物过敏史。", "否认药物过敏史。", "否认药物及食物过敏史", "无已知药物过敏史。")
ALLERGIES_POSITIVE = (
    "青霉素过敏。", "青霉素过敏（表现为皮疹）。", "对磺胺类药物过敏。", "头孢类药物过敏。", "对海鲜过敏。",
    "碘造影剂过敏（曾出现喉头水肿）。",
)
ONSET_TRIGGERS = ("无明显诱因", "无明显诱因", "")
VISIT_SENTENCES = ("为进一步诊治收入{ref}。", "门诊拟“{dx}”收入{ref}。", "今来我院，急诊拟“{dx}”收住入院。")
NO_DRUG_SENTENCES = ("暂无药物医嘱。", "入院暂不予药物治疗。")


# --- formatting helpers ------------------------------------------------------------------------------------


def format_date(rng: StableRandom, day: date) -> str:
    """Write an admission date in one of the formats hospital systems use."""
    hour, minute = rng.randint(7, 22), rng.randint(0, 59)
    formats = (
        f"{day.year}年{day.month}月{day.day}日",
        f"{day.year}年{day.month:02d}月{day.day:02d}日",
        day.isoformat(),
        f"{day.isoformat()} {hour:02d}:{minute:02d}",
        f"{day.year}.{day.month}.{day.day}",
        f"{day.year}/{day.month}/{day.day}",
    )
    return rng.choice(formats)


def format_duration(rng: StableRandom, long: bool) -> str:
    if long:
        return rng.choice(("3月", "半年", "1年", "2年", "5年", "10余年"))
    return rng.choice(("2小时", "6小时", "12小时", "1天", "2天", "3天", "5天", "1周", "10天", "2周"))


def format_age(rng: StableRandom, age: int, months: int) -> str:
    """Write an age. A bare number needs the ``年龄`` label in front of it (see ``render_demographics``)."""
    if age == 0:
        return f"{max(months, 1)}个月"
    if age < 4 and months and rng.random() < 0.5:
        return f"{age}岁{months}个月"
    if rng.random() < 0.3:
        return str(age)
    return rng.choice((f"{age}岁", f"{age} 岁"))


def format_vitals(rng: StableRandom, vitals: dict[str, Any]) -> str:
    t, p, r, sbp, dbp = (vitals[k] for k in ("体温", "脉搏", "呼吸", "收缩压", "舒张压"))
    if sbp is None:
        return rng.choice((f"T {t}℃，P {p}次/分，R {r}次/分。", f"体温 {t} ℃，脉搏 {p} 次/分，呼吸 {r} 次/分"))
    return rng.choice((
        f"体温 {t} ℃，脉搏 {p} 次/分，呼吸 {r} 次/分，血压 {sbp} /{dbp} mmHg",
        f"T {t}℃  P {p}次/分  R {r}次/分  BP {sbp}/{dbp}mmHg",
        f"体温:{t}℃ 脉搏:{p}次/分 呼吸:{r}次/分 血压:{sbp}/{dbp}mmHg",
        f"T:{t}℃，P:{p}次/分，R:{r}次/分，BP:{sbp}/{dbp}mmHg",
    ))


def format_diagnoses(rng: StableRandom, diagnoses: Sequence[str]) -> str:
    if len(diagnoses) == 1 and rng.random() < 0.5:
        return diagnoses[0]
    style = rng.choice(("{i}. {d}", "{i}.{d}", "{i}、{d}", "（{i}）{d}"))
    joiner = "\n" if rng.random() < 0.8 else "  "
    return joiner.join(style.format(i=i, d=d) for i, d in enumerate(diagnoses, start=1))


def format_drug(rng: StableRandom, drug: Drug, separator: str) -> str:
    return separator.join((drug.name, drug.dose, drug.route, drug.frequency))


# --- record composition ------------------------------------------------------------------------------------


@dataclass
class Patient:
    name: str
    sex: str | None
    age: int | None
    age_text: str | None
    department: Department
    complaint: Complaint
    ward: str
    admitted: date
    date_text: str


def draw_patient(rng: StableRandom) -> Patient:
    department = rng.choice(DEPARTMENTS)
    complaint = rng.choice(department.complaints)
    sexes = complaint.sexes or department.sexes
    sex = rng.choice(sexes)
    given_name = rng.choice(GIVEN_MALE if sex == "男" else GIVEN_FEMALE)
    age = rng.randint(*(complaint.ages or department.ages))
    months = rng.randint(0, 11)
    admitted = date(2022, 1, 1) + timedelta(days=rng.randint(0, 3 * 365))
    patient = Patient(
        name=rng.choice(SURNAMES) + given_name,
        sex=sex,
        age=age,
        age_text=format_age(rng, age, months),
        department=department,
        complaint=complaint,
        ward=rng.choice(department.names),
        admitted=admitted,
        date_text=format_date(rng, admitted),
    )
    if rng.random() < 0.06:
        patient.age, patient.age_text = None, None
    elif len(sexes) == 2 and rng.random() < 0.04:
        patient.sex = None
    return patient


def subject_word(patient: Patient) -> str:
    """Return how the record refers to the patient: "患儿" in paediatric departments, else "患者"."""
    return "患儿" if patient.department.ages[1] < 14 else "患者"


def render_demographics(rng: StableRandom, patient: Patient) -> str:
    """Write the patient line in one of several layouts. An unknown age or sex is left out of the text."""
    p = patient
    age_text = p.age_text if p.age_text is None or not p.age_text.isdigit() else p.age_text + "岁"
    if rng.random() < 0.55:
        gap = rng.choice(("　", "  ", " ", "\t", "，"))
        colon = rng.choice(("：", ":"))
        parts = [f"姓名{colon}{p.name}"]
        parts += [f"性别{colon}{p.sex}"] if p.sex else []
        parts += [f"年龄{colon}{p.age_text}"] if p.age_text else []
        label = rng.choice(("科别", "科室", "病区"))
        second = [f"{label}{colon}{p.ward}", f"{rng.choice(('入院日期', '入院时间'))}{colon}{p.date_text}"]
        joiner = rng.choice(("\n", gap))
        return gap.join(parts) + joiner + gap.join(second)
    sex_text = f"{p.sex}{rng.choice(('', '性'))}" if p.sex else None
    head = "，".join(x for x in (f"{subject_word(p)}{p.name}", sex_text, age_text) if x)
    if rng.random() < 0.5:
        return f"{head}，于{p.date_text}入住{p.ward}。"
    return f"{head}，{p.ward}，{p.date_text}入院。"


@dataclass
class Clinical:
    complaint: str
    present_illness: str
    past_history: str | None
    allergy: str | None
    vitals: dict[str, Any] | None
    exam: str
    diagnoses: list[str]
    drugs: list[Drug] | None


def draw_clinical(rng: StableRandom, patient: Patient) -> Clinical:
    complaint = patient.complaint
    duration = format_duration(rng, complaint.course != "short")
    if complaint.course == "relapse":
        chief = f"反复{complaint.symptom}{duration}，加重{format_duration(rng, False)}。"
    else:
        chief = f"{complaint.symptom}{duration}。"

    main = rng.choice(complaint.diagnoses)
    comorbid = draw_comorbidities(rng, patient, main)
    diagnoses = [main] + [c[1] for c in comorbid]
    onset = complaint.onset or f"{rng.choice(ONSET_TRIGGERS)}出现{complaint.symptom}"
    ref = rng.choice(("我科", "我院", patient.ward))
    visit = rng.choice(VISIT_SENTENCES).format(ref=ref, dx=main)
    return Clinical(
        complaint=chief,
        present_illness=f"{subject_word(patient)}{duration}前{onset}，{rng.choice(complaint.details)}{visit}",
        past_history=draw_past_history(rng, patient, comorbid),
        allergy=draw_allergy(rng),
        vitals=draw_vitals(rng, patient),
        exam=complaint.exam,
        diagnoses=diagnoses,
        drugs=draw_drugs(rng, complaint, comorbid),
    )


def draw_comorbidities(rng: StableRandom, patient: Patient, main: str) -> list[Comorbidity]:
    """Draw 0-2 chronic conditions that neither repeat nor contradict the main diagnosis or each other."""
    if patient.age is not None and patient.age < 35:
        return []
    chosen: list[Comorbidity] = []
    for candidate in rng.sample(COMORBIDITIES, rng.choice((0, 0, 1, 1, 2))):
        # The first three characters name the disease ("高血压", "2型糖"), so a second grade of it is skipped.
        existing = [main] + [c[1] for c in chosen]
        if not any(candidate[1][:3] in text for text in existing):
            chosen.append(candidate)
    return chosen


def draw_past_history(rng: StableRandom, patient: Patient, comorbid: Sequence[Comorbidity]) -> str | None:
    if not comorbid and rng.random() < 0.15:
        return None
    if not comorbid and rng.random() < 0.2:
        return rng.choice(("既往体健。", "体健。"))
    parts = [history.format(n=rng.randint(2, 20)) for history, _, _ in comorbid]
    surgeries = [s for s in SURGERY_HISTORY if patient.sex == "女" or "剖宫产" not in s]
    if rng.random() < 0.2:
        parts.append(rng.choice(surgeries).format(year=rng.randint(1995, 2020)))
    negatives = [n for n in NEGATIVE_HISTORY if not any(word in n and word in "".join(parts) for word in DENIABLE)]
    parts += rng.sample(negatives, rng.randint(0 if parts else 1, 2))
    return "，".join(parts) + "。"


def draw_allergy(rng: StableRandom) -> str | None:
    roll = rng.random()
    if roll < 0.12:
        return None
    if roll < 0.3:
        return rng.choice(ALLERGIES_POSITIVE)
    return rng.choice(ALLERGIES_NEGATIVE)


def draw_vitals(rng: StableRandom, patient: Patient) -> dict[str, Any] | None:
    if rng.random() < 0.08:
        return None
    child = patient.department.ages[1] < 14
    fever = rng.random() < 0.3
    systolic = rng.randint(86, 120) if child else rng.randint(100, 178)
    temperature = round(rng.uniform(37.6, 39.8) if fever else rng.uniform(36.0, 37.2), 1)
    vitals: dict[str, Any] = {
        "体温": temperature,
        "脉搏": rng.randint(90, 150) if child else rng.randint(58, 112),
        "呼吸": rng.randint(22, 36) if child else rng.randint(14, 26),
        "收缩压": systolic,
        "舒张压": round(systolic * rng.uniform(0.55, 0.7)),
    }
    if child and rng.random() < 0.5:
        vitals["收缩压"], vitals["舒张压"] = None, None
    return vitals


def draw_drugs(rng: StableRandom, complaint: Complaint, comorbid: Sequence[Comorbidity]) -> list[Drug] | None:
    """Draw the admission orders: None for a record without an orders section, [] for "no drugs ordered"."""
    roll = rng.random()
    if roll < 0.12:
        return None
    if roll < 0.18:
        return []
    drugs = rng.sample(complaint.drugs, rng.randint(min(1, len(complaint.drugs)), min(2, len(complaint.drugs))))
    for _, _, drug in comorbid:
        if drug is not None and all(drug.name != d.name for d in drugs):
            drugs.append(drug)
    return drugs[:3]


# --- assembling the text -----------------------------------------------------------------------------------


def section(style: str, title: str, body: str) -> str:
    if style == "hash":
        return f"###{title}:\n{body}" if "\n" in body or len(body) > 30 else f"###{title}：{body}"
    if style == "bracket":
        return f"【{title}】{body}" if "\n" not in body else f"【{title}】\n{body}"
    return f"{title}：{body}"


def render_record(rng: StableRandom, patient: Patient, clinical: Clinical, compact: int) -> str:
    """Assemble the record text. ``compact`` 1 or more leaves out the exam findings after the vital signs."""
    style = rng.choice(("hash", "hash", "bracket", "bracket", "plain"))
    title = {"hash": "###入院记录", "bracket": "【入院记录】", "plain": "入院记录"}[style]
    sections = [title, section(style, rng.choice(("一般情况", "基本信息")), render_demographics(rng, patient))]
    sections.append(section(style, "主诉", clinical.complaint))
    sections.append(section(style, "现病史", clinical.present_illness))
    if clinical.past_history is not None:
        sections.append(section(style, "既往史", clinical.past_history))
    if clinical.allergy is not None:
        sections.append(section(style, "过敏史", clinical.allergy))
    if clinical.vitals is not None:
        exam = format_vitals(rng, clinical.vitals)
        exam += "" if compact else "\n" + clinical.exam
        sections.append(section(style, "体格检查", exam))
    sections.append(section(style, rng.choice(("入院诊断", "初步诊断")), format_diagnoses(rng, clinical.diagnoses)))
    if clinical.drugs is not None:
        sections.append(section(style, rng.choice(("医嘱", "入院医嘱", "用药")), render_orders(rng, clinical.drugs)))
    return "\n".join(sections) + "\n"


def render_orders(rng: StableRandom, drugs: Sequence[Drug]) -> str:
    if not drugs:
        return rng.choice(NO_DRUG_SENTENCES)
    separator = rng.choice(("\t", "\t", " ", "  ", "　"))
    return "\n".join(format_drug(rng, drug, separator) for drug in drugs)


def gold_fields(patient: Patient, clinical: Clinical, schema: str) -> dict[str, Any]:
    full: dict[str, Any] = {
        "姓名": patient.name,
        "性别": patient.sex,
        "年龄": patient.age,
        "科别": patient.ward,
        "入院日期": patient.admitted.isoformat(),
        "主诉": clinical.complaint,
        "现病史": clinical.present_illness,
        "既往史": clinical.past_history,
        "过敏史": clinical.allergy,
        "生命体征": clinical.vitals,
        "入院诊断": list(clinical.diagnoses),
        "用药": None if clinical.drugs is None else [
            {"药名": d.name, "剂量": d.dose, "用法": d.route, "频次": d.frequency} for d in clinical.drugs
        ],
    }
    names = ADMISSION_FIELDS if schema == "admission" else BASIC_FIELDS
    return {name: full[name] for name in names}


def draw_row(rng: StableRandom, schema: str) -> tuple[str, dict[str, Any]]:
    """Draw one record and its gold fields, redrawing until the text fits the length bounds."""
    while True:
        patient = draw_patient(rng)
        clinical = draw_clinical(rng, patient)
        # Too long: first leave out the exam findings, then cut the history of present illness to one clause.
        for compact in (0, 1, 2):
            if compact == 2:
                clinical.present_illness = clinical.present_illness.split("，", 1)[0] + "。"
            text = render_record(rng, patient, clinical, compact)
            if MIN_CHARS <= len(text) <= MAX_CHARS:
                return text, gold_fields(patient, clinical, schema)


def generate(seed: int, counts: dict[str, int], schema: str = "basic_info") -> dict[str, list[dict[str, Any]]]:
    """Draw the rows of every split from one seeded stream. A text never repeats across or within splits."""
    rng = StableRandom(seed)
    seen: set[str] = set()
    splits: dict[str, list[dict[str, Any]]] = {}
    for split, count in counts.items():
        rows = []
        while len(rows) < count:
            text, fields = draw_row(rng, schema)
            if text in seen:
                continue
            seen.add(text)
            rows.append({"id": f"syn-{split}-{len(rows) + 1:04d}", "text": text, "fields": fields})
        splits[split] = rows
    return splits


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="random seed. The same seed and counts give the same files")
    parser.add_argument("--train", type=int, default=160, help="number of training records")
    parser.add_argument("--dev", type=int, default=40, help="number of development records")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent, help="output folder for train.jsonl and dev.jsonl")
    parser.add_argument(
        "--schema", choices=("basic_info", "admission"), default="basic_info",
        help="gold fields to write: schemas/basic_info.json (default) or schemas/admission.json",
    )
    args = parser.parse_args(argv)
    if args.train < 0 or args.dev < 0:
        parser.error(f"--train and --dev must be 0 or more, got --train {args.train} --dev {args.dev}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    splits = generate(args.seed, {"train": args.train, "dev": args.dev}, args.schema)
    args.out.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        write_jsonl(args.out / f"{split}.jsonl", rows)
        print(f"wrote {len(rows)} records to {args.out / f'{split}.jsonl'}")


if __name__ == "__main__":
    main()
