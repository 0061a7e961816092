"""The catalog feed: `loftmem catalog load FILE` (JSON Lines or CSV) upserts products all
or nothing, reports bad lines by number, and summarises what changed."""

from __future__ import annotations

import json
import uuid

from service.catalog import feed as catalog_feed


def _load(stack, path, *args):
    return stack.loftmem("catalog", "load", str(path), *args)


def _products(stack, prefix):
    return stack.cypher(
        "MATCH (p:Product) WHERE p.sku STARTS WITH $p "
        "RETURN p.sku AS sku, p.price AS price, p.in_stock AS in_stock, p.discontinued AS discontinued, "
        "[(p)-[:HAS_STYLE]->(s) | s.name] AS styles, [(p)-[:IN_CATEGORY]->(c) | c.name] AS categories "
        "ORDER BY sku",
        p=prefix,
    )


def test_lines_are_checked_one_by_one():
    good, error = catalog_feed.check(
        {"sku": "A-1", "name": "Arlo", "category": "Sofa", "style": "modern|japandi", "price": "999.5"}, 1
    )
    assert error is None and good is not None
    assert good["category"] == "sofa" and good["styles"] == ["modern", "japandi"] and good["in_stock"] is True
    assert good["consumable"] is False  # unless the file says so
    candle, _ = catalog_feed.check(
        {"sku": "C-1", "name": "Candle", "category": "candle", "price": 4, "consumable": "yes"}, 2
    )
    assert candle is not None and candle["consumable"] is True
    _, error = catalog_feed.check(
        {"sku": "C-2", "name": "Candle", "category": "candle", "price": 4, "consumable": "?"}, 3
    )
    assert error is not None and error.errors[0].startswith("consumable")
    _, error = catalog_feed.check({"sku": "bad sku", "name": "", "category": "sofa", "price": "-3", "in_stock": "x"}, 7)
    assert error is not None and error.line == 7
    assert [e.split(":")[0] for e in error.errors] == ["sku", "name", "price", "in_stock"]


def test_a_full_load_discontinues_what_it_omits():
    existing = {
        "A": {
            "name": "A",
            "category": "sofa",
            "styles": [],
            "materials": [],
            "colors": [],
            "brand": None,
            "price": 1.0,
            "in_stock": True,
            "discontinued": False,
        },
        "B": {
            "name": "B",
            "category": "sofa",
            "styles": [],
            "materials": [],
            "colors": [],
            "brand": None,
            "price": 1.0,
            "in_stock": True,
            "discontinued": False,
        },
        "C": {
            "name": "C",
            "category": "sofa",
            "styles": [],
            "materials": [],
            "colors": [],
            "brand": None,
            "price": 1.0,
            "in_stock": False,
            "discontinued": True,
        },
    }
    incoming = [existing["A"] | {"sku": "A"}, existing["B"] | {"sku": "B", "price": 2.0}, {**existing["A"], "sku": "D"}]
    full = catalog_feed.diff(existing, incoming, full=True)
    assert (full.added, full.changed, full.unchanged, full.discontinued) == (["D"], ["B"], ["A"], [])
    assert catalog_feed.diff(existing, incoming[:1], full=True).discontinued == ["B"]
    assert catalog_feed.diff(existing, incoming[:1], full=False).discontinued == []


def test_a_file_with_bad_lines_loads_nothing_and_names_them(stack, service, tmp_path):
    prefix = f"CF{uuid.uuid4().hex[:6].upper()}-"
    path = tmp_path / "catalog.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"sku": f"{prefix}1", "name": "Good", "category": "sofa", "price": 10}),
                json.dumps({"sku": f"{prefix}2", "name": "No price", "category": "sofa"}),
                "{not json",
                json.dumps({"sku": f"{prefix}1", "name": "Twice", "category": "sofa", "price": 10}),
            ]
        )
    )
    done = _load(stack, path, "--partial")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["error"] == "validation_error" and "nothing was loaded" in report["detail"]
    assert [(x["line"], x["sku"]) for x in report["lines"]] == [(2, f"{prefix}2"), (3, None), (4, f"{prefix}1")]
    assert "price" in report["lines"][0]["errors"][0] and "line 1" in report["lines"][2]["errors"][0]
    assert _products(stack, prefix) == []


def test_csv_load_adds_then_a_second_load_changes(stack, service, tmp_path):
    prefix = f"CF{uuid.uuid4().hex[:6].upper()}-"
    header = "sku,name,category,style,material,colour,brand,price,in_stock\n"
    first = tmp_path / "v1.csv"
    first.write_text(
        header
        + f"{prefix}1,Arlo Feed Sofa,sofa,modern|japandi,oak,grey,Nordhaven,1999,true\n"
        + f"{prefix}2,Brio Feed Table,coffee table,industrial,steel,black,,349.5,yes\n"
    )
    done = _load(stack, first, "--partial")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["added"], summary["changed"], summary["unchanged"], summary["discontinued"]) == (2, 0, 0, 0)
    rows = _products(stack, prefix)
    assert [(r["sku"], r["price"], r["in_stock"]) for r in rows] == [
        (f"{prefix}1", 1999.0, True),
        (f"{prefix}2", 349.5, True),
    ]
    assert sorted(rows[0]["styles"]) == ["japandi", "modern"] and rows[1]["categories"] == ["coffee table"]

    second = tmp_path / "v2.csv"
    second.write_text(
        header
        + f"{prefix}1,Arlo Feed Sofa,sofa,scandinavian,oak,grey,Nordhaven,1899,true\n"
        + f"{prefix}2,Brio Feed Table,coffee table,industrial,steel,black,,349.5,false\n"
    )
    done = _load(stack, second, "--partial")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["added"], summary["changed"], summary["unchanged"]) == (0, 2, 0)
    rows = _products(stack, prefix)
    assert rows[0]["price"] == 1899.0 and rows[0]["styles"] == ["scandinavian"]  # the old styles went
    assert rows[1]["in_stock"] is False
    # the same file again changes nothing; orders may now name the new products
    again = json.loads(_load(stack, second, "--partial").stdout.strip().splitlines()[-1])
    assert (again["changed"], again["unchanged"]) == (0, 2)


def test_the_catalog_says_which_products_are_consumable(stack, service, tmp_path):
    """A consumable (bought again and again) is offered again to the customers who buy it."""
    prefix = f"CF{uuid.uuid4().hex[:6].upper()}-"
    path = tmp_path / "catalog.csv"
    path.write_text(
        "sku,name,category,price,consumable\n"
        + f"{prefix}1,Beeswax Feed Candle,candle,4.5,true\n"
        + f"{prefix}2,Oak Feed Stool,stool,89,\n"
    )
    done = _load(stack, path, "--partial")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = stack.cypher(
        "MATCH (p:Product) WHERE p.sku STARTS WITH $p RETURN p.sku AS sku, p.consumable AS consumable ORDER BY sku",
        p=prefix,
    )
    assert rows == [{"sku": f"{prefix}1", "consumable": True}, {"sku": f"{prefix}2", "consumable": False}]
    flipped = tmp_path / "flipped.csv"
    flipped.write_text(path.read_text().replace(",true\n", ",false\n"))
    again = json.loads(_load(stack, flipped, "--partial").stdout.strip().splitlines()[-1])
    assert (again["changed"], again["unchanged"]) == (1, 1)
