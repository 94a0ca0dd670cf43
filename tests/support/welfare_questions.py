"""Questions people ask a welfare chat, with the services a good answer lists first.

Each row: the question, then the catalogue ids of which at least one must be among the
first three services. Written from how people ask (spoken, misspaced, with particles and
endings), not from the catalogue's wording. docs/safety.md shows the table and its hit rate;
tests/test_welfare_search.py asserts it (`python -m bench.safety` prints it).
"""

from __future__ import annotations

QUESTIONS: list[tuple[str, tuple[str, ...]]] = [
    ("기초생활수급자 신청 방법", ("livelihood-benefit", "medical-aid")),
    ("수급자 되려면 어떻게 해요", ("livelihood-benefit", "medical-aid", "housing-benefit")),
    ("출산 지원금", ("first-meeting-voucher", "parent-benefit")),
    ("아기 낳으면 나라에서 돈 주나요", ("first-meeting-voucher", "parent-benefit")),
    ("병원비가 너무 많이 나왔어요", ("catastrophic-medical-cost", "medical-aid")),
    ("수술비가 몇 천만원 나왔는데 도움 받을 수 있나요", ("catastrophic-medical-cost",)),
    ("생리대 지원", ("menstrual-products",)),
    ("어르신 일자리 알아보고 있어요", ("senior-jobs",)),
    ("우리 엄마 요양원 비용", ("long-term-care-insurance",)),
    ("할머니가 혼자 사시는데 걱정돼요", ("emergency-safety-service", "senior-customized-care")),
    ("아버지 치매 검사 받고 싶어요", ("dementia-screening",)),
    ("노인 틀니 보험 되나요", ("senior-dentures",)),
    ("65세 넘으면 받는 연금", ("basic-pension",)),
    ("임신했는데 병원비 지원 있어요?", ("pregnancy-medical-voucher", "high-risk-pregnancy")),
    ("시험관 시술 비용 지원", ("infertility-treatment",)),
    ("아기 분유랑 기저귀 살 돈이 없어요", ("diaper-formula",)),
    ("어린이집 보내면 돈 나와요?", ("childcare-fee",)),
    ("집에서 아이 키우면 받는 수당", ("home-care-allowance", "parent-benefit")),
    ("초등학생 방과후 돌봄", ("local-child-center", "child-care-service")),
    ("애기 예방접종 무료인가요", ("child-vaccination",)),
    ("회사에서 잘렸어요", ("job-seeking-benefit", "national-employment-support")),
    ("실업급여 받는 법", ("job-seeking-benefit",)),
    ("취업하고 싶은데 도와주는 제도 있나요", ("national-employment-support", "disability-jobs")),
    ("직업훈련 받고 싶어요", ("tomorrow-learning-card",)),
    ("청년 월세 지원", ("youth-rent-support",)),
    ("사회초년생 목돈 모으는 적금", ("youth-leap-account", "youth-tomorrow-savings")),
    ("대학 등록금이 부담돼요", ("national-scholarship",)),
    ("장애인 연금 얼마 받아요", ("disability-pension",)),
    ("장애 아이 재활 치료", ("developmental-rehabilitation",)),
    ("휠체어 지원 받을 수 있나요", ("assistive-devices",)),
    ("장애인 활동보조 신청", ("personal-assistance",)),
    ("한부모 가정 양육비", ("single-parent-child-support",)),
    ("이혼하고 혼자 애 키워요", ("single-parent-child-support",)),
    ("결혼 이민자 가족 지원", ("multicultural-family",)),
    ("겨울 난방비가 걱정이에요", ("energy-voucher",)),
    ("갑자기 생활비가 없어요", ("emergency-welfare", "livelihood-benefit")),
    ("집세가 밀렸어요", ("housing-benefit", "youth-rent-support")),
    ("우울증 상담 받고 싶어요", ("mind-investment-voucher", "mental-health-crisis-line")),
    ("남편한테 폭력을 당했던 사람을 돕는 곳", ("violence-victim-support",)),
    ("근로장려금 신청", ("earned-income-tax-credit",)),
    ("아이 있는 집 세금 환급", ("child-tax-credit",)),
    ("영화나 공연 볼 수 있는 카드", ("culture-nuri-card",)),
    ("아이 운동 수업 바우처", ("sports-voucher",)),
    ("학교 그만둔 청소년", ("out-of-school-youth",)),
    ("산후조리 도와주는 서비스", ("postpartum-care", "gyeonggi-postpartum-care")),
    (
        "부산 사는 25살 청년인데 받을 수 있는 거",
        (
            "national-employment-support",
            "youth-leap-account",
            "youth-tomorrow-savings",
            "youth-rent-support",
        ),
    ),
    ("수원 사는 24살이에요 청년 지원", ("gyeonggi-youth-basic-income",)),
    ("해남에서 아기 낳았어요", ("haenam-birth-grant",)),
    ("서울 사는 청년 수당", ("seoul-youth-allowance",)),
    ("무릎 인공관절 수술비", ("senior-knee-surgery",)),
]
