"""Seeded bugs with history: a green commit, then the commit that regresses it."""

from __future__ import annotations

from bug import Bug

BUGS: list[Bug] = [
    Bug(
        name="h_discount_operator",
        category="wrong operator",
        history=True,
        module="pricing.py",
        good='''"""Prices with discounts and tax."""


def discounted(price, percent):
    """Price after taking `percent` off."""
    cut = price * percent / 100
    return round(price - cut, 2)


def with_tax(price, rate=0.2):
    return round(price * (1 + rate), 2)


def basket_total(prices, percent=0):
    return round(sum(discounted(p, percent) for p in prices), 2)
''',
        bad='''"""Prices with discounts and tax."""


def discounted(price, percent):
    """Price after taking `percent` off."""
    cut = price * percent / 100
    return round(price + cut, 2)


def with_tax(price, rate=0.2):
    return round(price * (1 + rate), 2)


def basket_total(prices, percent=0):
    return round(sum(discounted(p, percent) for p in prices), 2)
''',
        tests="""from pricing import basket_total, discounted, with_tax


def test_discounted():
    assert discounted(100, 10) == 90


def test_no_discount():
    assert discounted(50, 0) == 50


def test_tax():
    assert with_tax(10) == 12


def test_basket():
    assert basket_total([10, 20], 50) == 15
""",
        heldout="""from pricing import basket_total, discounted


def test_full_discount():
    assert discounted(80, 100) == 0


def test_fraction():
    assert discounted(9.99, 10) == 8.99


def test_basket_no_discount():
    assert basket_total([1, 2, 3]) == 6
""",
    ),
    Bug(
        name="h_paginate_off_by_one",
        category="off-by-one",
        history=True,
        module="pages.py",
        good='''"""Split result lists into pages."""


def page(items, number, size=10):
    """Items on page `number` (1-based)."""
    start = (number - 1) * size
    return items[start:start + size]


def page_count(items, size=10):
    return (len(items) + size - 1) // size
''',
        bad='''"""Split result lists into pages."""


def page(items, number, size=10):
    """Items on page `number` (1-based)."""
    start = (number - 1) * size
    return items[start:start + size - 1]


def page_count(items, size=10):
    return (len(items) + size - 1) // size
''',
        tests="""from pages import page, page_count


def test_first_page():
    assert page(list(range(25)), 1) == list(range(10))


def test_last_page():
    assert page(list(range(25)), 3) == [20, 21, 22, 23, 24]


def test_count():
    assert page_count(list(range(25))) == 3
""",
        heldout="""from pages import page


def test_small_pages():
    assert page(list("abcdef"), 2, size=2) == ["c", "d"]


def test_beyond():
    assert page([1, 2], 3, size=2) == []
""",
    ),
    Bug(
        name="h_grade_boundary",
        category="wrong boundary",
        history=True,
        module="grades.py",
        good='''"""Letter grades from scores."""

BANDS = [(90, "A"), (80, "B"), (70, "C"), (60, "D")]


def letter(score):
    for floor, name in BANDS:
        if score >= floor:
            return name
    return "F"


def passed(score):
    return letter(score) != "F"
''',
        bad='''"""Letter grades from scores."""

BANDS = [(90, "A"), (80, "B"), (70, "C"), (60, "D")]


def letter(score):
    for floor, name in BANDS:
        if score > floor:
            return name
    return "F"


def passed(score):
    return letter(score) != "F"
''',
        tests="""from grades import letter, passed


def test_a():
    assert letter(95) == "A"


def test_exact_b():
    assert letter(80) == "B"


def test_fail():
    assert not passed(10)
""",
        heldout="""from grades import letter, passed


def test_exact_a():
    assert letter(90) == "A"


def test_exact_pass():
    assert passed(60)


def test_f():
    assert letter(59) == "F"
""",
    ),
    Bug(
        name="h_profile_none_guard",
        category="missing None guard",
        history=True,
        module="profiles.py",
        good='''"""Display names for user profiles."""


def display_name(profile):
    nick = profile.get("nick")
    if nick is None:
        return profile["name"]
    return nick.strip().title()


def greeting(profile):
    return "Hello, " + display_name(profile)
''',
        bad='''"""Display names for user profiles."""


def display_name(profile):
    nick = profile.get("nick")
    return nick.strip().title()


def greeting(profile):
    return "Hello, " + display_name(profile)
''',
        tests="""from profiles import display_name, greeting


def test_nick():
    assert display_name({"name": "Ann Lee", "nick": " annie "}) == "Annie"


def test_no_nick():
    assert greeting({"name": "Bob"}) == "Hello, Bob"
""",
        heldout="""from profiles import display_name


def test_name_only():
    assert display_name({"name": "Cy"}) == "Cy"


def test_nick_case():
    assert display_name({"name": "x", "nick": "dj max"}) == "Dj Max"
""",
    ),
    Bug(
        name="h_mean_wrong_variable",
        category="wrong variable",
        history=True,
        module="stats.py",
        good='''"""Small statistics helpers."""


def mean(values):
    total = 0
    count = 0
    for v in values:
        total += v
        count += 1
    return total / count


def spread(values):
    return max(values) - min(values)
''',
        bad='''"""Small statistics helpers."""


def mean(values):
    total = 0
    count = 0
    for v in values:
        total += v
        count += 1
    return total / total


def spread(values):
    return max(values) - min(values)
''',
        tests="""from stats import mean, spread


def test_mean():
    assert mean([2, 4, 6]) == 4


def test_spread():
    assert spread([3, 9, 1]) == 8
""",
        heldout="""from stats import mean


def test_mean_single():
    assert mean([5]) == 5


def test_mean_float():
    assert mean([1, 2]) == 1.5
""",
    ),
    Bug(
        name="h_slug_missing_call",
        category="missing call",
        history=True,
        module="slugs.py",
        good='''"""URL slugs."""
import re


def slugify(title):
    words = re.findall(r"[a-z0-9]+", title.lower())
    return "-".join(words)


def unique_slug(title, taken):
    base = slugify(title)
    slug, n = base, 2
    while slug in taken:
        slug = f"{base}-{n}"
        n += 1
    return slug
''',
        bad='''"""URL slugs."""
import re


def slugify(title):
    words = re.findall(r"[a-z0-9]+", title)
    return "-".join(words)


def unique_slug(title, taken):
    base = slugify(title)
    slug, n = base, 2
    while slug in taken:
        slug = f"{base}-{n}"
        n += 1
    return slug
''',
        tests="""from slugs import slugify, unique_slug


def test_slug():
    assert slugify("Hello World") == "hello-world"


def test_unique():
    assert unique_slug("a b", {"a-b"}) == "a-b-2"
""",
        heldout="""from slugs import slugify, unique_slug


def test_digits():
    assert slugify("Top 10 Tips!") == "top-10-tips"


def test_unique_twice():
    assert unique_slug("X", {"x", "x-2"}) == "x-3"
""",
    ),
    Bug(
        name="h_clamp_swapped_args",
        category="swapped arguments",
        history=True,
        module="volume.py",
        good='''"""Volume control."""


def clamp(value, low, high):
    return max(low, min(value, high))


def set_volume(level):
    return clamp(level, 0, 100)


def step(level, delta):
    return set_volume(level + delta)
''',
        bad='''"""Volume control."""


def clamp(value, low, high):
    return max(low, min(value, high))


def set_volume(level):
    return clamp(level, 100, 0)


def step(level, delta):
    return set_volume(level + delta)
''',
        tests="""from volume import set_volume, step


def test_in_range():
    assert set_volume(40) == 40


def test_too_loud():
    assert step(95, 10) == 100
""",
        heldout="""from volume import set_volume, step


def test_negative():
    assert set_volume(-5) == 0


def test_step_down():
    assert step(50, -20) == 30
""",
    ),
    Bug(
        name="h_average_empty",
        category="exception on an edge input",
        history=True,
        module="ratings.py",
        good='''"""Average ratings of products."""


def average(ratings):
    if not ratings:
        return 0.0
    return sum(ratings) / len(ratings)


def best(products):
    return max(products, key=lambda name: average(products[name]))
''',
        bad='''"""Average ratings of products."""


def average(ratings):
    return sum(ratings) / len(ratings)


def best(products):
    return max(products, key=lambda name: average(products[name]))
''',
        tests="""from ratings import average, best


def test_average():
    assert average([4, 5]) == 4.5


def test_best_with_unrated():
    assert best({"a": [3], "b": [], "c": [5, 4]}) == "c"
""",
        heldout="""from ratings import average


def test_empty():
    assert average([]) == 0.0


def test_one():
    assert average([2]) == 2
""",
    ),
    Bug(
        name="h_dedupe_quadratic",
        category="accidental quadratic loop",
        history=True,
        module="dedupe.py",
        good='''"""Remove repeated ids while keeping order."""


def dedupe(ids):
    seen = set()
    out = []
    for i in ids:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out
''',
        bad='''"""Remove repeated ids while keeping order."""


def dedupe(ids):
    seen = []
    out = []
    for i in ids:
        if i not in seen:
            seen.append(i)
            out.append(i)
    return out
''',
        tests="""from dedupe import dedupe


def test_order():
    assert dedupe([3, 1, 3, 2, 1]) == [3, 1, 2]


def test_many():
    ids = list(range(6000)) * 2
    assert dedupe(ids) == list(range(6000))
""",
        heldout="""from dedupe import dedupe


def test_empty():
    assert dedupe([]) == []


def test_strings():
    assert dedupe(["a", "b", "a"]) == ["a", "b"]
""",
        perf_test="tests/test_dedupe.py::test_many",
    ),
    Bug(
        name="h_fib_lost_cache",
        category="lost cache",
        history=True,
        module="paths.py",
        good='''"""Counting lattice paths."""
import functools


@functools.lru_cache(maxsize=None)
def paths(rows, cols):
    if rows == 0 or cols == 0:
        return 1
    return paths(rows - 1, cols) + paths(rows, cols - 1)
''',
        bad='''"""Counting lattice paths."""
import functools


def paths(rows, cols):
    if rows == 0 or cols == 0:
        return 1
    return paths(rows - 1, cols) + paths(rows, cols - 1)
''',
        tests="""from paths import paths


def test_small():
    assert paths(2, 2) == 6


def test_large():
    assert paths(11, 11) == 705432
""",
        heldout="""from paths import paths


def test_line():
    assert paths(0, 7) == 1


def test_rect():
    assert paths(3, 2) == 10
""",
        perf_test="tests/test_paths.py::test_large",
    ),
    Bug(
        name="h_leap_operator",
        category="wrong operator",
        history=True,
        module="calendar_util.py",
        good='''"""Calendar helpers."""


def is_leap(year):
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_in_year(year):
    return 366 if is_leap(year) else 365
''',
        bad='''"""Calendar helpers."""


def is_leap(year):
    return year % 4 == 0 and (year % 100 != 0 and year % 400 == 0)


def days_in_year(year):
    return 366 if is_leap(year) else 365
''',
        tests="""from calendar_util import days_in_year, is_leap


def test_leap():
    assert is_leap(2024)


def test_century():
    assert not is_leap(1900)


def test_days():
    assert days_in_year(2000) == 366
""",
        heldout="""from calendar_util import is_leap


def test_common():
    assert not is_leap(2023)


def test_400():
    assert is_leap(1600)
""",
    ),
    Bug(
        name="h_config_key",
        category="exception on an edge input",
        history=True,
        module="settings.py",
        good='''"""Settings with defaults."""

DEFAULTS = {"retries": 3, "timeout": 10}


def setting(overrides, name):
    return overrides.get(name, DEFAULTS[name])


def timeout(overrides):
    return setting(overrides, "timeout") * 1000
''',
        bad='''"""Settings with defaults."""

DEFAULTS = {"retries": 3, "timeout": 10}


def setting(overrides, name):
    return overrides[name]


def timeout(overrides):
    return setting(overrides, "timeout") * 1000
''',
        tests="""from settings import setting, timeout


def test_override():
    assert setting({"retries": 5}, "retries") == 5


def test_default_timeout():
    assert timeout({}) == 10000
""",
        heldout="""from settings import setting


def test_default_retries():
    assert setting({}, "retries") == 3


def test_override_timeout():
    assert setting({"timeout": 1}, "timeout") == 1
""",
    ),
    Bug(
        name="h_bisect_three_commits",
        category="off-by-one",
        history=True,
        module="windows.py",
        good='''"""Sliding windows over sequences."""


def windows(seq, width):
    return [seq[i:i + width] for i in range(len(seq) - width + 1)]


def moving_sum(seq, width):
    return [sum(w) for w in windows(seq, width)]
''',
        bad='''"""Sliding windows over sequences."""


def windows(seq, width):
    return [seq[i:i + width] for i in range(len(seq) - width)]


def moving_sum(seq, width):
    return [sum(w) for w in windows(seq, width)]
''',
        tests="""from windows import moving_sum, windows


def test_windows():
    assert windows([1, 2, 3], 2) == [[1, 2], [2, 3]]


def test_moving():
    assert moving_sum([1, 2, 3, 4], 3) == [6, 9]
""",
        heldout="""from windows import windows


def test_full_width():
    assert windows([1, 2], 2) == [[1, 2]]


def test_width_one():
    assert windows("ab", 1) == ["a", "b"]
""",
        noise=2,
    ),
    Bug(
        name="h_sorted_in_loop",
        category="accidental quadratic loop",
        history=True,
        module="ranking.py",
        good='''"""Rank scores."""


def ranks(scores):
    order = sorted(scores, reverse=True)
    return [order.index(s) + 1 for s in scores]
''',
        bad='''"""Rank scores."""


def ranks(scores):
    out = []
    for s in scores:
        order = sorted(scores, reverse=True)
        out.append(order.index(s) + 1)
    return out
''',
        tests="""from ranking import ranks


def test_ranks():
    assert ranks([10, 30, 20]) == [3, 1, 2]


def test_many():
    scores = list(range(2500))
    assert ranks(scores)[0] == 2500
""",
        heldout="""from ranking import ranks


def test_single():
    assert ranks([5]) == [1]


def test_ties():
    assert ranks([7, 7, 1]) == [1, 1, 3]
""",
        perf_test="tests/test_ranking.py::test_many",
    ),
    Bug(
        name="h_stock_missing_return",
        category="missing call",
        history=True,
        module="stock.py",
        good='''"""Stock levels."""


def restock(levels, item, amount):
    new = dict(levels)
    new[item] = new.get(item, 0) + amount
    return new


def sell(levels, item, amount):
    new = dict(levels)
    if new.get(item, 0) < amount:
        raise ValueError(item)
    new[item] -= amount
    return new
''',
        bad='''"""Stock levels."""


def restock(levels, item, amount):
    new = dict(levels)
    new[item] = new.get(item, 0) + amount


def sell(levels, item, amount):
    new = dict(levels)
    if new.get(item, 0) < amount:
        raise ValueError(item)
    new[item] -= amount
    return new
''',
        tests="""import pytest

from stock import restock, sell


def test_restock():
    assert restock({"a": 1}, "a", 2) == {"a": 3}


def test_sell():
    assert sell({"a": 3}, "a", 1) == {"a": 2}


def test_oversell():
    with pytest.raises(ValueError):
        sell({}, "a", 1)
""",
        heldout="""from stock import restock


def test_restock_new():
    assert restock({}, "b", 4) == {"b": 4}


def test_restock_keeps_input():
    levels = {"a": 1}
    restock(levels, "a", 1)
    assert levels == {"a": 1}
""",
    ),
]
