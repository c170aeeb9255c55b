"""Seeded bugs without history: a buggy program and its tests, in one commit."""

from __future__ import annotations

from bug import Bug

BUGS: list[Bug] = [
    Bug(
        name="n_area_operator",
        category="wrong operator",
        module="shapes.py",
        good='''"""Areas and perimeters."""


def rect_area(w, h):
    return w * h


def rect_perimeter(w, h):
    return 2 * (w + h)


def square_area(side):
    return rect_area(side, side)
''',
        bad='''"""Areas and perimeters."""


def rect_area(w, h):
    return w * h


def rect_perimeter(w, h):
    return 2 * (w * h)


def square_area(side):
    return rect_area(side, side)
''',
        tests="""from shapes import rect_area, rect_perimeter, square_area


def test_area():
    assert rect_area(3, 4) == 12


def test_perimeter():
    assert rect_perimeter(3, 4) == 14


def test_square():
    assert square_area(5) == 25
""",
        heldout="""from shapes import rect_perimeter


def test_perimeter_square():
    assert rect_perimeter(1, 1) == 4


def test_perimeter_flat():
    assert rect_perimeter(5, 0) == 10
""",
    ),
    Bug(
        name="n_range_sum_off_by_one",
        category="off-by-one",
        module="series.py",
        good='''"""Integer series."""


def sum_to(n):
    total = 0
    for i in range(1, n + 1):
        total += i
    return total


def squares_to(n):
    return [i * i for i in range(1, n + 1)]
''',
        bad='''"""Integer series."""


def sum_to(n):
    total = 0
    for i in range(1, n):
        total += i
    return total


def squares_to(n):
    return [i * i for i in range(1, n + 1)]
''',
        tests="""from series import squares_to, sum_to


def test_sum():
    assert sum_to(4) == 10


def test_squares():
    assert squares_to(3) == [1, 4, 9]
""",
        heldout="""from series import sum_to


def test_sum_one():
    assert sum_to(1) == 1


def test_sum_zero():
    assert sum_to(0) == 0


def test_sum_hundred():
    assert sum_to(100) == 5050
""",
    ),
    Bug(
        name="n_adult_boundary",
        category="wrong boundary",
        module="ages.py",
        good='''"""Age rules."""

ADULT = 18


def is_adult(age):
    return age >= ADULT


def category(age):
    if age < 13:
        return "child"
    if not is_adult(age):
        return "teen"
    return "adult"
''',
        bad='''"""Age rules."""

ADULT = 18


def is_adult(age):
    return age > ADULT


def category(age):
    if age < 13:
        return "child"
    if not is_adult(age):
        return "teen"
    return "adult"
''',
        tests="""from ages import category, is_adult


def test_adult():
    assert is_adult(30)


def test_eighteen():
    assert category(18) == "adult"


def test_child():
    assert category(5) == "child"
""",
        heldout="""from ages import category, is_adult


def test_exact():
    assert is_adult(18)


def test_teen():
    assert category(17) == "teen"
""",
    ),
    Bug(
        name="n_format_name_none",
        category="missing None guard",
        module="names.py",
        good='''"""Format person names."""


def full_name(first, middle, last):
    if middle is None:
        return f"{first} {last}"
    return f"{first} {middle[0]}. {last}"


def initials(first, last):
    return first[0] + last[0]
''',
        bad='''"""Format person names."""


def full_name(first, middle, last):
    return f"{first} {middle[0]}. {last}"


def initials(first, last):
    return first[0] + last[0]
''',
        tests="""from names import full_name, initials


def test_middle():
    assert full_name("Ada", "King", "Lovelace") == "Ada K. Lovelace"


def test_no_middle():
    assert full_name("Alan", None, "Turing") == "Alan Turing"


def test_initials():
    assert initials("Grace", "Hopper") == "GH"
""",
        heldout="""from names import full_name


def test_no_middle_again():
    assert full_name("Linus", None, "T") == "Linus T"


def test_middle_again():
    assert full_name("J", "Ronald", "T") == "J R. T"
""",
    ),
    Bug(
        name="n_max_gap_wrong_variable",
        category="wrong variable",
        module="gaps.py",
        good='''"""Gaps between sorted numbers."""


def max_gap(values):
    ordered = sorted(values)
    best = 0
    for a, b in zip(ordered, ordered[1:]):
        gap = b - a
        if gap > best:
            best = gap
    return best
''',
        bad='''"""Gaps between sorted numbers."""


def max_gap(values):
    ordered = sorted(values)
    best = 0
    for a, b in zip(ordered, ordered[1:]):
        gap = b - a
        if gap > best:
            best = b
    return best
''',
        tests="""from gaps import max_gap


def test_gap():
    assert max_gap([1, 10, 3]) == 7


def test_single():
    assert max_gap([4]) == 0
""",
        heldout="""from gaps import max_gap


def test_even():
    assert max_gap([2, 4, 6]) == 2


def test_negative():
    assert max_gap([-5, 5]) == 10
""",
    ),
    Bug(
        name="n_word_count_missing_call",
        category="missing call",
        module="words.py",
        good='''"""Word frequencies."""


def normalise(word):
    return word.strip(".,!?").lower()


def counts(text):
    result = {}
    for raw in text.split():
        word = normalise(raw)
        if word:
            result[word] = result.get(word, 0) + 1
    return result
''',
        bad='''"""Word frequencies."""


def normalise(word):
    return word.strip(".,!?").lower()


def counts(text):
    result = {}
    for raw in text.split():
        word = raw
        if word:
            result[word] = result.get(word, 0) + 1
    return result
''',
        tests="""from words import counts, normalise


def test_normalise():
    assert normalise("Hello!") == "hello"


def test_counts():
    assert counts("The cat. the CAT") == {"the": 2, "cat": 2}
""",
        heldout="""from words import counts


def test_punctuation_only():
    assert counts("... !!") == {}


def test_simple():
    assert counts("a b a") == {"a": 2, "b": 1}
""",
    ),
    Bug(
        name="n_power_swapped",
        category="swapped arguments",
        module="growth.py",
        good='''"""Compound growth."""


def grow(amount, rate, years):
    return round(amount * pow(1 + rate, years), 2)


def doubling_years(rate):
    years = 0
    while grow(1, rate, years) < 2:
        years += 1
    return years
''',
        bad='''"""Compound growth."""


def grow(amount, rate, years):
    return round(amount * pow(years, 1 + rate), 2)


def doubling_years(rate):
    years = 0
    while grow(1, rate, years) < 2:
        years += 1
    return years
''',
        tests="""from growth import doubling_years, grow


def test_grow():
    assert grow(100, 0.1, 2) == 121


def test_doubling():
    assert doubling_years(0.5) == 2
""",
        heldout="""from growth import grow


def test_zero_years():
    assert grow(50, 0.3, 0) == 50


def test_zero_rate():
    assert grow(10, 0, 5) == 10
""",
    ),
    Bug(
        name="n_ratio_zero_division",
        category="exception on an edge input",
        module="ratios.py",
        good='''"""Success ratios for dashboards."""


def success_ratio(ok, total):
    if total == 0:
        return 0.0
    return ok / total


def percent(ok, total):
    return round(100 * success_ratio(ok, total), 1)
''',
        bad='''"""Success ratios for dashboards."""


def success_ratio(ok, total):
    return ok / total


def percent(ok, total):
    return round(100 * success_ratio(ok, total), 1)
''',
        tests="""from ratios import percent, success_ratio


def test_ratio():
    assert success_ratio(1, 4) == 0.25


def test_percent_empty():
    assert percent(0, 0) == 0.0
""",
        heldout="""from ratios import percent, success_ratio


def test_ratio_empty():
    assert success_ratio(0, 0) == 0.0


def test_percent():
    assert percent(1, 3) == 33.3
""",
    ),
    Bug(
        name="n_last_n_index",
        category="exception on an edge input",
        module="history.py",
        good='''"""Recent items."""


def last(items):
    if not items:
        return None
    return items[-1]


def last_n(items, n):
    return items[-n:] if n else []
''',
        bad='''"""Recent items."""


def last(items):
    return items[-1]


def last_n(items, n):
    return items[-n:] if n else []
''',
        tests="""from history import last, last_n


def test_last():
    assert last([1, 2, 3]) == 3


def test_last_empty():
    assert last([]) is None


def test_last_n():
    assert last_n([1, 2, 3], 2) == [2, 3]
""",
        heldout="""from history import last


def test_last_one():
    assert last(["x"]) == "x"


def test_last_empty_tuple():
    assert last(()) is None
""",
    ),
    Bug(
        name="n_price_key_error",
        category="exception on an edge input",
        module="catalog.py",
        good='''"""Catalog prices."""

PRICES = {"apple": 3, "pear": 4}


def price_of(name):
    return PRICES.get(name, 0)


def order_total(names):
    return sum(price_of(n) for n in names)
''',
        bad='''"""Catalog prices."""

PRICES = {"apple": 3, "pear": 4}


def price_of(name):
    return PRICES[name]


def order_total(names):
    return sum(price_of(n) for n in names)
''',
        tests="""from catalog import order_total, price_of


def test_price():
    assert price_of("apple") == 3


def test_unknown_item_is_free():
    assert order_total(["apple", "kiwi"]) == 3
""",
        heldout="""from catalog import price_of


def test_unknown():
    assert price_of("fig") == 0


def test_pear():
    assert price_of("pear") == 4
""",
    ),
    Bug(
        name="n_index_missing_return",
        category="missing call",
        module="index.py",
        good='''"""Index records by key."""


def build_index(records, key):
    index = {}
    for rec in records:
        index.setdefault(rec[key], []).append(rec)
    return index


def lookup(records, key, value):
    return build_index(records, key).get(value, [])
''',
        bad='''"""Index records by key."""


def build_index(records, key):
    index = {}
    for rec in records:
        index.setdefault(rec[key], []).append(rec)


def lookup(records, key, value):
    return build_index(records, key).get(value, [])
''',
        tests="""from index import build_index, lookup


def test_build():
    assert build_index([{"k": 1}], "k") == {1: [{"k": 1}]}


def test_lookup_missing():
    assert lookup([{"k": 1}], "k", 2) == []
""",
        heldout="""from index import lookup


def test_lookup_two():
    recs = [{"k": 1, "n": 1}, {"k": 1, "n": 2}]
    assert len(lookup(recs, "k", 1)) == 2


def test_empty():
    assert lookup([], "k", 1) == []
""",
    ),
    Bug(
        name="n_find_min_comparison",
        category="wrong operator",
        module="extremes.py",
        good='''"""Find extremes without min()."""


def smallest(values):
    best = values[0]
    for v in values[1:]:
        if v < best:
            best = v
    return best


def largest(values):
    best = values[0]
    for v in values[1:]:
        if v > best:
            best = v
    return best
''',
        bad='''"""Find extremes without min()."""


def smallest(values):
    best = values[0]
    for v in values[1:]:
        if v > best:
            best = v
    return best


def largest(values):
    best = values[0]
    for v in values[1:]:
        if v > best:
            best = v
    return best
''',
        tests="""from extremes import largest, smallest


def test_smallest():
    assert smallest([4, 2, 8]) == 2


def test_largest():
    assert largest([4, 2, 8]) == 8
""",
        heldout="""from extremes import smallest


def test_negative():
    assert smallest([-1, -9, 3]) == -9


def test_single():
    assert smallest([7]) == 7
""",
    ),
    Bug(
        name="n_chunk_off_by_one",
        category="off-by-one",
        module="chunks.py",
        good='''"""Split lists into chunks."""


def chunks(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]


def chunk_count(items, size):
    return len(chunks(items, size))
''',
        bad='''"""Split lists into chunks."""


def chunks(items, size):
    return [items[i:i + size] for i in range(1, len(items), size)]


def chunk_count(items, size):
    return len(chunks(items, size))
''',
        tests="""from chunks import chunk_count, chunks


def test_chunks():
    assert chunks([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]


def test_count():
    assert chunk_count(list(range(6)), 3) == 2
""",
        heldout="""from chunks import chunks


def test_one_chunk():
    assert chunks("abc", 5) == ["abc"]


def test_empty():
    assert chunks([], 2) == []
""",
    ),
    Bug(
        name="n_tax_constant",
        category="off-by-one",
        module="payroll.py",
        good='''"""Payroll."""

WEEKS = 52


def weekly(salary):
    return round(salary / WEEKS, 2)


def overtime(hours, rate):
    extra = max(0, hours - 40)
    return extra * rate * 1.5
''',
        bad='''"""Payroll."""

WEEKS = 52


def weekly(salary):
    return round(salary / WEEKS, 2)


def overtime(hours, rate):
    extra = max(0, hours - 41)
    return extra * rate * 1.5
''',
        tests="""from payroll import overtime, weekly


def test_weekly():
    assert weekly(5200) == 100


def test_overtime():
    assert overtime(42, 10) == 30
""",
        heldout="""from payroll import overtime


def test_none():
    assert overtime(40, 10) == 0


def test_one_hour():
    assert overtime(41, 2) == 3
""",
    ),
    Bug(
        name="n_validate_boolop",
        category="wrong operator",
        module="passwords.py",
        good='''"""Password rules."""


def strong(password):
    has_digit = any(c.isdigit() for c in password)
    has_upper = any(c.isupper() for c in password)
    return len(password) >= 8 and has_digit and has_upper
''',
        bad='''"""Password rules."""


def strong(password):
    has_digit = any(c.isdigit() for c in password)
    has_upper = any(c.isupper() for c in password)
    return len(password) >= 8 and has_digit or has_upper
''',
        tests="""from passwords import strong


def test_strong():
    assert strong("Abcdefg1")


def test_short():
    assert not strong("Ab1")
""",
        heldout="""from passwords import strong


def test_no_digit():
    assert not strong("Abcdefgh")


def test_no_upper():
    assert not strong("abcdefg1")
""",
    ),
    Bug(
        name="n_merge_wrong_variable",
        category="wrong variable",
        module="merge.py",
        good='''"""Merge sorted lists."""


def merge(left, right):
    out = []
    i = j = 0
    while i < len(left) and j < len(right):
        if left[i] <= right[j]:
            out.append(left[i])
            i += 1
        else:
            out.append(right[j])
            j += 1
    out.extend(left[i:])
    out.extend(right[j:])
    return out
''',
        bad='''"""Merge sorted lists."""


def merge(left, right):
    out = []
    i = j = 0
    while i < len(left) and j < len(right):
        if left[i] <= right[j]:
            out.append(left[i])
            i += 1
        else:
            out.append(right[j])
            j += 1
    out.extend(left[i:])
    out.extend(right[i:])
    return out
''',
        tests="""from merge import merge


def test_merge():
    assert merge([1, 4], [2, 3, 5, 6]) == [1, 2, 3, 4, 5, 6]


def test_empty_left():
    assert merge([], [1]) == [1]


def test_left_first():
    assert merge([1, 2, 3], [4, 5]) == [1, 2, 3, 4, 5]
""",
        heldout="""from merge import merge


def test_interleaved():
    assert merge([1, 3, 5], [2, 4]) == [1, 2, 3, 4, 5]


def test_right_longer():
    assert merge([9], [1, 2, 3]) == [1, 2, 3, 9]
""",
    ),
    Bug(
        name="n_temperature_operator",
        category="wrong operator",
        module="temperature.py",
        good='''"""Temperature conversions."""


def to_fahrenheit(celsius):
    return celsius * 9 / 5 + 32


def to_celsius(fahrenheit):
    return (fahrenheit - 32) * 5 / 9
''',
        bad='''"""Temperature conversions."""


def to_fahrenheit(celsius):
    return celsius * 9 / 5 + 32


def to_celsius(fahrenheit):
    return (fahrenheit + 32) * 5 / 9
''',
        tests="""from temperature import to_celsius, to_fahrenheit


def test_boiling():
    assert to_fahrenheit(100) == 212


def test_freezing():
    assert to_celsius(32) == 0
""",
        heldout="""from temperature import to_celsius


def test_body():
    assert round(to_celsius(98.6), 1) == 37.0


def test_minus_forty():
    assert to_celsius(-40) == -40
""",
    ),
]
