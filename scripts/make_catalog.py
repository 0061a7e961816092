#!/usr/bin/env python3
"""Writes service/data/catalog.json: LOFT's sample furniture catalog.

Deterministic (seeded): running it twice gives the same file byte for byte, so the
committed JSON and this script never drift apart. Vocabulary (categories, styles,
materials, colours) carries the synonyms customers actually type; the matcher in
``service/catalog.py`` adds plural forms of category words itself.

    python scripts/make_catalog.py [--out service/data/catalog.json] [--seed 20240516]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

SEED = 20240516
OUT = Path(__file__).resolve().parent.parent / "service" / "data" / "catalog.json"

# (name, label, parent, synonyms). Categories without products ("chair", "table",
# "lighting") are parents so that "chairs" or "a lamp" still resolve to something.
CATEGORIES: list[tuple[str, str, str | None, list[str]]] = [
    ("sofa", "Sofas", None, ["sofa", "couch", "settee", "three-seater", "3-seater", "davenport", "chesterfield"]),
    ("sectional", "Sectional sofas", "sofa", ["sectional", "sectional sofa", "corner sofa", "corner couch",
                                              "l-shaped sofa", "l-shaped couch", "u-shaped sofa", "modular sofa",
                                              "modular couch", "sectional couch"]),
    ("loveseat", "Loveseats", "sofa", ["loveseat", "love seat", "two-seater", "2-seater", "two-seat sofa", "small sofa", "snuggle chair"]),
    ("sleeper sofa", "Sleeper sofas", "sofa", ["sleeper sofa", "sofa bed", "pull-out couch", "pull-out sofa", "futon", "daybed"]),
    ("chair", "Chairs", None, ["chair", "seating"]),
    ("armchair", "Armchairs", "chair", ["armchair", "arm chair", "accent chair", "lounge chair", "club chair", "reading chair", "wingback", "wingback chair", "occasional chair"]),
    ("recliner", "Recliners", "armchair", ["recliner", "reclining chair", "power recliner", "rocker recliner", "reclining sofa"]),
    ("ottoman", "Ottomans & poufs", None, ["ottoman", "pouf", "pouffe", "footstool", "foot stool", "footrest", "hassock"]),
    ("table", "Tables", None, ["table"]),
    ("coffee table", "Coffee tables", "table", ["coffee table", "cocktail table", "center table", "centre table"]),
    ("side table", "Side tables", "table", ["side table", "end table", "accent table", "c-table", "drinks table"]),
    ("console table", "Console tables", "table", ["console table", "entryway table", "hall table", "sofa table"]),
    ("dining table", "Dining tables", "table", ["dining table", "kitchen table", "dinner table", "dining room table", "extendable table", "breakfast table"]),
    ("dining chair", "Dining chairs", "chair", ["dining chair", "kitchen chair", "dining room chair", "side chair"]),
    ("bar stool", "Bar & counter stools", "chair", ["bar stool", "barstool", "counter stool", "kitchen stool", "stool"]),
    ("bench", "Benches", None, ["bench", "entryway bench", "dining bench", "storage bench"]),
    ("bed", "Beds", None, ["bed", "bed frame", "bedframe", "platform bed", "king bed", "queen bed", "double bed", "upholstered bed", "canopy bed", "headboard"]),
    ("nightstand", "Nightstands", "table", ["nightstand", "night stand", "bedside table", "night table", "bedside cabinet"]),
    ("dresser", "Dressers", None, ["dresser", "chest of drawers", "tallboy", "lowboy", "drawers"]),
    ("wardrobe", "Wardrobes", None, ["wardrobe", "armoire", "closet", "clothes cabinet"]),
    ("bookshelf", "Bookshelves", None, ["bookshelf", "bookshelves", "bookcase", "book shelf", "shelving unit", "shelving", "shelf", "shelves", "etagere"]),
    ("desk", "Desks", "table", ["desk", "writing desk", "standing desk", "computer desk", "work desk", "secretary desk"]),
    ("office chair", "Office chairs", "chair", ["office chair", "desk chair", "task chair", "ergonomic chair", "gaming chair", "computer chair"]),
    ("tv stand", "TV stands", None, ["tv stand", "tv unit", "tv console", "media console", "media unit", "entertainment center", "entertainment centre", "media cabinet", "television stand"]),
    ("rug", "Rugs", None, ["rug", "area rug", "carpet", "runner rug", "hallway runner"]),
    ("lighting", "Lighting", None, ["lamp", "lighting", "light fixture"]),
    ("floor lamp", "Floor lamps", "lighting", ["floor lamp", "standing lamp", "arc lamp", "torchiere"]),
    ("table lamp", "Table lamps", "lighting", ["table lamp", "desk lamp", "bedside lamp", "reading lamp"]),
    ("pendant light", "Pendant lights", "lighting", ["pendant light", "pendant lamp", "chandelier", "ceiling light", "hanging light"]),
    ("mirror", "Mirrors", None, ["mirror", "wall mirror", "floor mirror", "full-length mirror", "vanity mirror"]),
    ("outdoor sofa", "Outdoor sofas", None, ["outdoor sofa", "patio sofa", "garden sofa", "outdoor couch", "patio couch", "outdoor sectional", "patio sectional"]),
    ("outdoor dining set", "Outdoor dining sets", None, ["outdoor dining set", "patio dining set", "patio set", "garden furniture set", "outdoor table set", "garden table", "patio table", "outdoor dining table", "bistro set"]),
]

STYLES: list[tuple[str, list[str]]] = [
    ("modern", ["modern", "modernist", "sleek modern"]),
    ("mid-century modern", ["mid-century modern", "mid-century", "midcentury", "mid century", "mcm", "retro"]),
    ("scandinavian", ["scandinavian", "scandi", "nordic", "danish modern", "hygge"]),
    ("industrial", ["industrial", "loft-style", "urban industrial"]),
    ("farmhouse", ["farmhouse", "modern farmhouse", "country-style", "cottage-style", "shabby chic"]),
    ("traditional", ["traditional", "classic", "classical", "victorian", "colonial"]),
    ("coastal", ["coastal", "beachy", "beach house", "nautical", "hamptons"]),
    ("bohemian", ["bohemian", "boho", "boho chic", "eclectic"]),
    ("minimalist", ["minimalist", "minimal", "minimalistic", "clean lines", "pared-back"]),
    ("rustic", ["rustic", "cabin-style", "lodge-style", "log cabin"]),
    ("contemporary", ["contemporary"]),
    ("art deco", ["art deco", "deco", "gatsby", "glam", "glamorous", "hollywood regency"]),
    ("japandi", ["japandi", "japanese-style", "wabi-sabi", "zen"]),
    ("transitional", ["transitional"]),
]

# (name, kind, synonyms). The generic kinds ("wood", "metal", "fabric", "stone") are
# materials too: "I love wood" matches any product whose material is of kind wood.
MATERIALS: list[tuple[str, str, list[str]]] = [
    ("wood", "wood", ["wood", "wooden", "solid wood", "hardwood", "timber"]),
    ("oak", "wood", ["oak", "white oak", "oak wood", "oaken"]),
    ("walnut", "wood", ["walnut", "american walnut", "walnut wood"]),
    ("teak", "wood", ["teak", "teakwood"]),
    ("pine", "wood", ["pine", "pinewood", "knotty pine"]),
    ("ash", "wood", ["ash wood", "ashwood", "white ash"]),
    ("mango wood", "wood", ["mango wood", "mangowood"]),
    ("acacia", "wood", ["acacia", "acacia wood"]),
    ("reclaimed wood", "wood", ["reclaimed wood", "reclaimed timber", "salvaged wood", "barnwood"]),
    ("fabric", "fabric", ["fabric", "upholstered", "upholstery"]),
    ("leather", "leather", ["leather", "top-grain leather", "full-grain leather", "genuine leather"]),
    ("faux leather", "leather", ["faux leather", "vegan leather", "pleather", "leatherette"]),
    ("velvet", "fabric", ["velvet", "velour", "crushed velvet"]),
    ("linen", "fabric", ["linen", "linen blend"]),
    ("boucle", "fabric", ["boucle", "bouclé", "boucle fabric", "teddy fabric", "sherpa"]),
    ("cotton", "fabric", ["cotton", "cotton twill"]),
    ("performance fabric", "fabric", ["performance fabric", "stain-resistant fabric", "pet-friendly fabric", "microfiber", "microfibre"]),
    ("wool", "fabric", ["wool", "woollen", "woolen"]),
    ("jute", "natural fiber", ["jute", "sisal", "seagrass"]),
    ("rattan", "natural fiber", ["rattan", "wicker", "cane", "caned"]),
    ("stone", "stone", ["stone", "natural stone"]),
    ("marble", "stone", ["marble", "carrara marble", "marble top"]),
    ("travertine", "stone", ["travertine"]),
    ("concrete", "stone", ["concrete", "cement"]),
    ("ceramic", "stone", ["ceramic", "stoneware", "porcelain"]),
    ("metal", "metal", ["metal", "metallic"]),
    ("steel", "metal", ["steel", "stainless steel", "powder-coated steel", "chrome"]),
    ("iron", "metal", ["iron", "wrought iron", "cast iron"]),
    ("brass", "metal", ["brass", "brushed brass", "antique brass"]),
    ("aluminum", "metal", ["aluminum", "aluminium", "powder-coated aluminum"]),
    ("glass", "glass", ["glass", "tempered glass", "smoked glass", "frosted glass"]),
    ("acrylic", "plastic", ["acrylic", "lucite", "perspex", "plexiglass"]),
]

COLORS: list[tuple[str, list[str]]] = [
    ("white", ["white", "bright white", "snow white"]),
    ("cream", ["cream", "ivory", "off-white", "oatmeal", "ecru"]),
    ("beige", ["beige", "taupe", "greige", "sand-coloured", "sand-colored"]),
    ("grey", ["grey", "gray", "light grey", "light gray", "dove grey", "silver"]),
    ("charcoal", ["charcoal", "dark grey", "dark gray", "graphite", "slate"]),
    ("black", ["black", "jet black", "ebony", "matte black"]),
    ("navy", ["navy", "navy blue", "dark blue", "midnight blue", "indigo"]),
    ("blue", ["blue", "light blue", "sky blue", "powder blue", "denim blue", "teal"]),
    ("green", ["green", "forest green", "bottle green", "dark green"]),
    ("sage", ["sage", "sage green", "mint", "mint green", "olive green"]),
    ("emerald", ["emerald", "emerald green", "jade"]),
    ("brown", ["brown", "chocolate", "espresso", "dark brown", "mocha"]),
    ("cognac", ["cognac", "tan", "caramel", "saddle brown", "camel"]),
    ("natural", ["natural finish", "natural wood", "natural tone", "light wood", "honey oak"]),
    ("terracotta", ["terracotta", "rust", "burnt orange", "orange"]),
    ("mustard", ["mustard", "ochre", "yellow", "mustard yellow"]),
    ("blush", ["blush", "pink", "dusty pink", "dusty rose", "pastel pink"]),
    ("burgundy", ["burgundy", "oxblood", "wine red", "maroon", "red"]),
    ("gold", ["gold", "golden", "brushed gold"]),
]

BRANDS = ["Nordhaven", "Marlowe House", "Oakridge & Co", "Bellweather", "Solvik", "Casa Verano",
          "Ironwood Works", "Halden", "Kestrel Studio", "Lumen & Loom", "Tidewater", "Atelier Mori"]

# brand -> styles it leans towards (products pick a brand that fits their style)
BRAND_STYLES = {
    "Nordhaven": {"scandinavian", "minimalist", "japandi", "modern"},
    "Marlowe House": {"traditional", "transitional", "art deco"},
    "Oakridge & Co": {"farmhouse", "rustic", "traditional"},
    "Bellweather": {"mid-century modern", "contemporary", "modern"},
    "Solvik": {"scandinavian", "minimalist", "modern", "contemporary"},
    "Casa Verano": {"bohemian", "coastal", "rustic"},
    "Ironwood Works": {"industrial", "rustic", "modern"},
    "Halden": {"contemporary", "transitional", "modern", "minimalist"},
    "Kestrel Studio": {"mid-century modern", "art deco", "contemporary"},
    "Lumen & Loom": {"bohemian", "modern", "scandinavian", "art deco", "traditional"},
    "Tidewater": {"coastal", "farmhouse", "contemporary"},
    "Atelier Mori": {"japandi", "minimalist", "scandinavian"},
}

# Pronounceable first words; a first word may recur across categories (a "collection":
# the Harlow sofa and the Harlow armchair) but never twice in one category, so
# "the Harlow sectional" names exactly one product.
FIRST_WORDS = """Harlow Aspen Juniper Sloane Beckett Everly Rowan Hollis Mercer Arden Calloway Dalton
Ellison Finley Greer Hadley Ingram Jasper Kendall Linden Nolan Presley Quinn Sutton Tatum Vance
Wren Yates Bristol Carver Dune Ember Fenwick Garrison Hudson Isla Jensen Larkin Monroe Nash Orla
Pierce Remy Soren Tobin Vesper Winslow Ansel Bodhi Cove Delphine Easton Flint Gable Hawthorne Juno
Keaton Lowell Maddox Neva Orson Palmer Rhodes Thatcher Ulla Vaughn Weston Yara Zephyr Amara Bram
Cleo Dorian Elio Fleur Greta Ines Jonah Kira Luca Mira Niko Otto Pia Rafe Sola Uma Viggo Willa
Axel Bea Cosmo Dex Elsa Frey Gus Ivo Jules Knox Lena Mabel Nils Oskar Penn Rune Stellan Tove Vera
Calder Eira Fable Gideon Holm Idris Jory Keld Liv Magnus Noor Pax Quill Riva Sven Thora Ursa Vale
Wilder Alba Bexley Corin Dax Elowen Farrow Galen Haven Ione Kit Lyra Marin Odell Perrin Roan Selby
Tamsin Varro Wynn""".split()

# category -> sku code, count, price range, (w, d, h) ranges in cm, materials
# (primary, secondary), colours, name nouns
SPECS: dict[str, dict] = {
    "sofa": dict(code="SOF", n=18, price=(699, 3299), dims=((180, 240), (88, 105), (75, 92)),
                 primary=["velvet", "linen", "boucle", "leather", "performance fabric", "cotton", "faux leather"],
                 secondary=["oak", "walnut", "steel", "brass", "pine", "ash"],
                 colors=["navy", "grey", "cream", "emerald", "cognac", "charcoal", "sage", "beige", "blush", "mustard", "terracotta", "brown"],
                 nouns=["Sofa", "Sofa", "Three-Seater Sofa", "Tuxedo Sofa", "Camelback Sofa", "Track-Arm Sofa", "Slope-Arm Sofa", "Chesterfield Sofa"]),
    "sectional": dict(code="SEC", n=16, price=(1499, 4999), dims=((250, 340), (150, 220), (72, 90)),
                      primary=["boucle", "velvet", "performance fabric", "linen", "leather", "cotton"],
                      secondary=["oak", "walnut", "steel", "pine"],
                      colors=["cream", "grey", "charcoal", "navy", "beige", "sage", "cognac", "emerald"],
                      nouns=["Modular Sectional", "Sectional", "Corner Sectional", "U-Shaped Sectional", "Chaise Sectional"]),
    "loveseat": dict(code="LOV", n=10, price=(549, 1799), dims=((130, 170), (80, 95), (75, 88)),
                     primary=["velvet", "linen", "boucle", "leather", "cotton"],
                     secondary=["oak", "walnut", "brass", "steel"],
                     colors=["blush", "emerald", "cream", "navy", "grey", "mustard", "cognac"],
                     nouns=["Loveseat", "Loveseat", "Two-Seater"]),
    "sleeper sofa": dict(code="SLP", n=8, price=(899, 2499), dims=((190, 230), (90, 105), (80, 92)),
                         primary=["performance fabric", "linen", "velvet", "cotton"],
                         secondary=["steel", "oak", "pine"],
                         colors=["grey", "charcoal", "navy", "beige", "sage"],
                         nouns=["Sleeper Sofa", "Sofa Bed", "Pull-Out Sleeper"]),
    "armchair": dict(code="ARM", n=14, price=(299, 1499), dims=((68, 95), (72, 95), (72, 105)),
                     primary=["boucle", "velvet", "leather", "linen", "rattan", "wool"],
                     secondary=["oak", "walnut", "teak", "brass", "steel", "ash"],
                     colors=["cream", "mustard", "emerald", "cognac", "navy", "terracotta", "blush", "grey", "natural"],
                     nouns=["Accent Chair", "Lounge Chair", "Armchair", "Club Chair", "Wingback Chair", "Barrel Chair"]),
    "recliner": dict(code="REC", n=8, price=(599, 1899), dims=((80, 100), (90, 105), (95, 108)),
                     primary=["leather", "faux leather", "performance fabric", "velvet"],
                     secondary=["steel", "walnut", "oak"],
                     colors=["cognac", "brown", "charcoal", "grey", "black", "navy"],
                     nouns=["Power Recliner", "Recliner", "Rocker Recliner", "Wall-Hugger Recliner"]),
    "ottoman": dict(code="OTT", n=8, price=(99, 499), dims=((40, 90), (40, 60), (38, 46)),
                    primary=["boucle", "velvet", "leather", "wool", "jute", "cotton"],
                    secondary=["oak", "brass", "steel"],
                    colors=["cream", "cognac", "emerald", "mustard", "natural", "grey", "blush"],
                    nouns=["Ottoman", "Pouf", "Storage Ottoman", "Footstool"]),
    "coffee table": dict(code="COF", n=14, price=(199, 1499), dims=((90, 140), (50, 80), (35, 46)),
                         primary=["walnut", "oak", "marble", "travertine", "glass", "reclaimed wood", "mango wood", "acacia", "concrete"],
                         secondary=["steel", "brass", "iron", "oak"],
                         colors=["natural", "black", "white", "brown", "beige", "gold"],
                         nouns=["Coffee Table", "Coffee Table", "Round Coffee Table", "Nesting Coffee Tables", "Lift-Top Coffee Table"]),
    "side table": dict(code="SID", n=10, price=(89, 599), dims=((35, 60), (35, 60), (45, 62)),
                       primary=["marble", "oak", "walnut", "travertine", "glass", "mango wood", "ceramic", "rattan"],
                       secondary=["brass", "steel", "iron"],
                       colors=["white", "black", "natural", "gold", "terracotta", "beige"],
                       nouns=["Side Table", "End Table", "Drum Side Table", "C-Table"]),
    "console table": dict(code="CON", n=8, price=(249, 1199), dims=((100, 180), (30, 45), (76, 82)),
                          primary=["walnut", "oak", "reclaimed wood", "marble", "mango wood", "glass"],
                          secondary=["iron", "steel", "brass"],
                          colors=["natural", "black", "brown", "white", "gold"],
                          nouns=["Console Table", "Console", "Entryway Console"]),
    "dining table": dict(code="DTB", n=16, price=(499, 3499), dims=((140, 260), (80, 110), (74, 77)),
                         primary=["oak", "walnut", "teak", "reclaimed wood", "marble", "acacia", "pine", "ash", "glass", "travertine"],
                         secondary=["steel", "iron", "brass"],
                         colors=["natural", "brown", "black", "white", "beige"],
                         nouns=["Dining Table", "Extendable Dining Table", "Round Dining Table", "Pedestal Dining Table", "Trestle Dining Table"]),
    "dining chair": dict(code="DCH", n=14, price=(89, 549), dims=((42, 58), (48, 60), (76, 90)),
                         primary=["oak", "walnut", "rattan", "velvet", "leather", "boucle", "ash", "steel", "acrylic"],
                         secondary=["steel", "brass", "oak", "linen"],
                         colors=["natural", "black", "cream", "emerald", "cognac", "grey", "navy", "blush"],
                         nouns=["Dining Chair", "Side Chair", "Dining Armchair", "Windsor Chair", "Wishbone Chair"]),
    "bar stool": dict(code="BAR", n=10, price=(79, 449), dims=((38, 50), (38, 52), (65, 105)),
                      primary=["oak", "walnut", "leather", "velvet", "rattan", "steel", "boucle"],
                      secondary=["steel", "brass", "iron"],
                      colors=["black", "cognac", "natural", "cream", "green", "grey"],
                      nouns=["Counter Stool", "Bar Stool", "Swivel Bar Stool"]),
    "bench": dict(code="BEN", n=8, price=(149, 799), dims=((100, 180), (35, 45), (44, 48)),
                  primary=["oak", "walnut", "reclaimed wood", "boucle", "velvet", "teak", "rattan"],
                  secondary=["iron", "steel", "brass"],
                  colors=["natural", "cream", "brown", "black", "emerald"],
                  nouns=["Bench", "Dining Bench", "Entryway Bench", "Storage Bench"]),
    "bed": dict(code="BED", n=14, price=(599, 2999), dims=((150, 200), (205, 225), (90, 140)),
                primary=["velvet", "linen", "boucle", "oak", "walnut", "rattan", "iron", "reclaimed wood", "teak"],
                secondary=["oak", "pine", "steel", "brass"],
                colors=["cream", "grey", "navy", "emerald", "natural", "blush", "black", "beige"],
                nouns=["Platform Bed", "Upholstered Bed", "Bed", "Canopy Bed", "Storage Bed", "Wingback Bed"]),
    "nightstand": dict(code="NST", n=10, price=(129, 699), dims=((40, 60), (35, 45), (50, 65)),
                       primary=["oak", "walnut", "rattan", "mango wood", "marble", "pine", "ash"],
                       secondary=["brass", "steel", "iron"],
                       colors=["natural", "white", "black", "brown", "cream"],
                       nouns=["Nightstand", "Bedside Table", "Two-Drawer Nightstand"]),
    "dresser": dict(code="DRS", n=10, price=(399, 1899), dims=((80, 180), (45, 55), (75, 130)),
                    primary=["oak", "walnut", "mango wood", "pine", "rattan", "teak", "ash"],
                    secondary=["brass", "steel", "iron"],
                    colors=["natural", "white", "brown", "black", "sage", "navy"],
                    nouns=["Six-Drawer Dresser", "Dresser", "Tall Dresser", "Chest of Drawers"]),
    "wardrobe": dict(code="WRD", n=8, price=(599, 2299), dims=((90, 200), (55, 65), (190, 225)),
                     primary=["oak", "walnut", "pine", "mango wood", "ash"],
                     secondary=["brass", "steel", "glass", "rattan"],
                     colors=["natural", "white", "black", "brown", "sage"],
                     nouns=["Wardrobe", "Two-Door Wardrobe", "Armoire"]),
    "bookshelf": dict(code="BKS", n=10, price=(149, 1299), dims=((60, 180), (28, 40), (90, 210)),
                      primary=["oak", "walnut", "reclaimed wood", "pine", "steel", "mango wood", "ash"],
                      secondary=["iron", "steel", "brass", "glass"],
                      colors=["natural", "black", "white", "brown"],
                      nouns=["Bookcase", "Bookshelf", "Ladder Shelf", "Etagere", "Cube Bookcase"]),
    "desk": dict(code="DSK", n=12, price=(199, 1499), dims=((100, 180), (50, 80), (74, 125)),
                 primary=["oak", "walnut", "reclaimed wood", "steel", "acacia", "ash", "glass"],
                 secondary=["steel", "iron", "brass"],
                 colors=["natural", "black", "white", "brown"],
                 nouns=["Writing Desk", "Desk", "Standing Desk", "Executive Desk", "Secretary Desk"]),
    "office chair": dict(code="OFC", n=10, price=(149, 1199), dims=((58, 70), (58, 70), (95, 125)),
                         primary=["leather", "faux leather", "performance fabric", "boucle", "velvet"],
                         secondary=["aluminum", "steel", "walnut"],
                         colors=["black", "grey", "cognac", "cream", "navy", "charcoal"],
                         nouns=["Office Chair", "Task Chair", "Ergonomic Office Chair", "Desk Chair"]),
    "tv stand": dict(code="TVS", n=10, price=(249, 1699), dims=((140, 220), (38, 50), (45, 65)),
                     primary=["walnut", "oak", "reclaimed wood", "mango wood", "teak", "acacia"],
                     secondary=["steel", "iron", "rattan", "glass"],
                     colors=["natural", "black", "brown", "white"],
                     nouns=["Media Console", "TV Stand", "Media Cabinet"]),
    "rug": dict(code="RUG", n=16, price=(99, 1499), dims=((150, 300), (90, 400), (1, 2)),
                primary=["wool", "jute", "cotton", "performance fabric"],
                secondary=["cotton", "wool"],
                colors=["cream", "beige", "navy", "grey", "terracotta", "blue", "green", "charcoal", "blush", "mustard"],
                nouns=["Area Rug", "Rug", "Runner", "Flatweave Rug", "Shag Rug", "Kilim Rug"]),
    "floor lamp": dict(code="FLP", n=10, price=(89, 699), dims=((30, 60), (30, 60), (140, 190)),
                       primary=["brass", "steel", "oak", "rattan", "iron", "ceramic"],
                       secondary=["linen", "glass", "marble"],
                       colors=["gold", "black", "natural", "white"],
                       nouns=["Floor Lamp", "Arc Floor Lamp", "Tripod Floor Lamp"]),
    "table lamp": dict(code="TBL", n=10, price=(49, 349), dims=((20, 40), (20, 40), (35, 70)),
                       primary=["ceramic", "brass", "glass", "marble", "rattan", "concrete"],
                       secondary=["linen", "brass", "cotton"],
                       colors=["white", "terracotta", "gold", "black", "sage", "blue", "cream"],
                       nouns=["Table Lamp", "Table Lamp", "Mushroom Lamp", "Desk Lamp"]),
    "pendant light": dict(code="PEN", n=8, price=(99, 899), dims=((25, 90), (25, 90), (20, 80)),
                          primary=["rattan", "glass", "brass", "steel", "ceramic"],
                          secondary=["brass", "steel", "linen"],
                          colors=["natural", "gold", "black", "white"],
                          nouns=["Pendant Light", "Pendant", "Chandelier", "Globe Pendant"]),
    "mirror": dict(code="MIR", n=10, price=(79, 899), dims=((50, 100), (2, 5), (60, 190)),
                   primary=["glass"],
                   secondary=["brass", "oak", "rattan", "iron", "walnut"],
                   colors=["gold", "black", "natural", "brown"],
                   nouns=["Wall Mirror", "Floor Mirror", "Round Mirror", "Arched Mirror"]),
    "outdoor sofa": dict(code="OSF", n=8, price=(799, 3499), dims=((180, 300), (80, 180), (65, 80)),
                         primary=["teak", "rattan", "aluminum", "acacia"],
                         secondary=["performance fabric", "cotton"],
                         colors=["natural", "grey", "white", "navy", "beige"],
                         nouns=["Outdoor Sofa", "Patio Sofa", "Outdoor Sectional"]),
    "outdoor dining set": dict(code="ODS", n=8, price=(599, 3999), dims=((120, 240), (80, 100), (74, 76)),
                               primary=["teak", "aluminum", "acacia", "rattan", "iron"],
                               secondary=["glass", "steel", "performance fabric"],
                               colors=["natural", "black", "white", "grey"],
                               nouns=["Outdoor Dining Set", "Patio Dining Set", "Bistro Set"]),
}

# which styles each material family tends to appear in
STYLE_POOL = {
    "default": ["modern", "mid-century modern", "scandinavian", "contemporary", "minimalist", "traditional",
                "transitional", "industrial", "farmhouse", "coastal", "bohemian", "rustic", "art deco", "japandi"],
    "reclaimed wood": ["rustic", "farmhouse", "industrial"],
    "rattan": ["coastal", "bohemian", "japandi", "scandinavian"],
    "teak": ["mid-century modern", "coastal", "japandi", "contemporary"],
    "walnut": ["mid-century modern", "modern", "contemporary", "minimalist", "japandi"],
    "oak": ["scandinavian", "japandi", "minimalist", "farmhouse", "modern", "traditional"],
    "pine": ["farmhouse", "rustic", "scandinavian", "traditional"],
    "ash": ["scandinavian", "japandi", "minimalist"],
    "marble": ["modern", "art deco", "contemporary", "minimalist"],
    "travertine": ["modern", "japandi", "contemporary"],
    "velvet": ["art deco", "modern", "traditional", "mid-century modern", "contemporary"],
    "boucle": ["modern", "japandi", "minimalist", "contemporary", "scandinavian"],
    "leather": ["mid-century modern", "industrial", "traditional", "modern", "rustic"],
    "faux leather": ["modern", "contemporary", "industrial"],
    "linen": ["coastal", "farmhouse", "scandinavian", "transitional", "minimalist"],
    "jute": ["bohemian", "coastal", "farmhouse"],
    "wool": ["traditional", "scandinavian", "bohemian", "modern", "minimalist"],
    "steel": ["industrial", "modern", "minimalist", "contemporary"],
    "iron": ["industrial", "farmhouse", "rustic"],
    "brass": ["art deco", "mid-century modern", "modern", "traditional"],
    "glass": ["modern", "contemporary", "art deco", "minimalist"],
    "concrete": ["industrial", "minimalist", "modern"],
    "ceramic": ["japandi", "bohemian", "modern", "coastal"],
    "mango wood": ["bohemian", "rustic", "modern", "farmhouse"],
    "acacia": ["rustic", "coastal", "farmhouse", "modern"],
    "aluminum": ["modern", "contemporary", "coastal"],
    "acrylic": ["modern", "contemporary", "art deco"],
}

TRAITS = {
    "sofa": ["deep seats and feather-wrapped cushions", "a tight back and tapered legs", "reversible seat cushions",
             "a low profile that suits smaller rooms", "kiln-dried hardwood frame and sinuous springs"],
    "sectional": ["modules that rearrange into an L or a U", "a reversible chaise", "extra-deep seats for lounging",
                  "removable, washable covers", "a storage chaise"],
    "loveseat": ["a compact footprint for apartments", "rolled arms and a cushioned back", "tapered legs and a tight seat"],
    "sleeper sofa": ["a full-size memory-foam mattress", "a pull-out mechanism that opens in one motion", "a queen-size sleeper"],
    "armchair": ["a curved back that hugs you", "a swivel base", "a deep seat made for reading", "slim arms and splayed legs"],
    "recliner": ["a quiet power motor and USB port", "a wall-hugging mechanism", "a gentle rocking base"],
    "ottoman": ["hidden storage under the lid", "a sturdy frame that doubles as a seat", "a hand-stitched finish"],
    "coffee table": ["a lower shelf for books", "softly rounded corners", "a lift-top that becomes a desk", "a sealed, water-resistant top"],
    "side table": ["a compact round top", "a slim base that slides under the sofa", "a small drawer"],
    "console table": ["two drawers and an open shelf", "a slim depth for hallways", "cord cut-outs at the back"],
    "dining table": ["an extension leaf that seats eight", "a sealed top that shrugs off spills", "a pedestal base with no legs to knock",
                     "seating for six"],
    "dining chair": ["a contoured seat", "a woven seat", "a stackable frame", "a wide, comfortable back"],
    "bar stool": ["a footrest ring", "a 360-degree swivel", "a low back"],
    "bench": ["space for three", "a lift-up storage seat", "a padded top"],
    "bed": ["a slatted base that needs no box spring", "a tall channel-tufted headboard", "under-bed storage drawers"],
    "nightstand": ["soft-close drawers", "a charging shelf", "an open cubby"],
    "dresser": ["six dovetailed drawers", "soft-close runners", "anti-tip hardware"],
    "wardrobe": ["a full-length hanging rail", "adjustable shelves", "an interior mirror"],
    "bookshelf": ["adjustable shelves", "five tiers of storage", "wall anchors included"],
    "desk": ["a cable-management tray", "a motorised height adjustment", "two drawers"],
    "office chair": ["adjustable lumbar support", "4D armrests", "a breathable back", "a tilt lock"],
    "tv stand": ["room for screens up to 85 inches", "cable management", "sliding doors"],
    "rug": ["a low pile that suits busy rooms", "a hand-knotted finish", "a washable weave", "a plush high pile"],
    "floor lamp": ["a dimmable warm bulb", "an adjustable arm", "a linen drum shade"],
    "table lamp": ["a pleated shade", "a dimmer switch", "a hand-glazed base"],
    "pendant light": ["an adjustable drop", "a hand-woven shade", "a dimmable fitting"],
    "mirror": ["a bevelled edge", "a lean-or-hang design", "a thin metal frame"],
    "outdoor sofa": ["weather-resistant cushions", "a frame built for all seasons", "quick-dry foam"],
    "outdoor dining set": ["seating for four", "seating for six", "an umbrella hole in the table"],
}


def make(seed: int = SEED) -> dict:
    rng = random.Random(seed)
    categories = [
        {"name": name, "label": label, "synonyms": syns, "parent": parent}
        for name, label, parent, syns in CATEGORIES
    ]
    styles = [{"name": n, "synonyms": s} for n, s in STYLES]
    materials = [{"name": n, "synonyms": s, "kind": k} for n, k, s in MATERIALS]
    colors = [{"name": n, "synonyms": s} for n, s in COLORS]
    brands = [{"name": b} for b in BRANDS]

    products = []
    for category, spec in SPECS.items():
        firsts = rng.sample(FIRST_WORDS, spec["n"])
        seen_names: set[str] = set()
        for i, first in enumerate(firsts, start=1):
            primary = rng.choice(spec["primary"])
            secondary = rng.choice([m for m in spec["secondary"] if m != primary] or [primary])
            mats = [primary] if secondary == primary else [primary, secondary]
            pool = STYLE_POOL.get(primary, STYLE_POOL["default"])
            style_list = [rng.choice(pool)]
            if rng.random() < 0.3:
                extra = rng.choice(STYLE_POOL.get(secondary, STYLE_POOL["default"]))
                if extra not in style_list:
                    style_list.append(extra)
            color_list = [rng.choice(spec["colors"])]
            if rng.random() < 0.15:
                extra_c = rng.choice(spec["colors"])
                if extra_c not in color_list:
                    color_list.append(extra_c)
            fitting = [b for b in BRANDS if BRAND_STYLES[b] & set(style_list)] or BRANDS
            brand = rng.choice(fitting)

            noun = rng.choice(spec["nouns"])
            descriptor = ""
            if rng.random() < 0.45 and primary not in ("glass",):
                descriptor = primary.title().replace("Boucle", "Bouclé") + " "
            name = f"{first} {descriptor}{noun}"
            if name in seen_names:
                name = f"{first} {noun}"
            seen_names.add(name)

            lo, hi = spec["price"]
            price = round(rng.uniform(lo, hi) / 10) * 10 - 1.0
            (w0, w1), (d0, d1), (h0, h1) = spec["dims"]
            width, depth, height = rng.randint(w0, w1), rng.randint(d0, d1), rng.randint(h0, h1)

            style_word = style_list[0]
            trait = rng.choice(TRAITS[category])
            article = "An" if style_word[0] in "aeiou" else "A"
            mat_phrase = mats[0] if len(mats) == 1 else f"{mats[0]} and {mats[1]}"
            templates = [
                f"{article} {style_word} {noun.lower()} in {mat_phrase}, finished in {color_list[0]}. It has {trait}.",
                f"{article} {style_word} {category} made from {mat_phrase} in a {color_list[0]} finish, with {trait}.",
                f"The {first} pairs {mat_phrase} with {trait}; a {style_word} piece in {color_list[0]}.",
            ]
            products.append({
                "sku": f"LOFT-{spec['code']}-{i:04d}",
                "name": name,
                "category": category,
                "styles": style_list,
                "materials": mats,
                "colors": color_list,
                "brand": brand,
                "price": float(price),
                "width_cm": width,
                "depth_cm": depth,
                "height_cm": height,
                "description": rng.choice(templates),
            })
    return {"categories": categories, "styles": styles, "materials": materials, "colors": colors,
            "brands": brands, "products": products}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    data = make(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {len(data['products'])} products, {len(data['categories'])} categories")


if __name__ == "__main__":
    main()
