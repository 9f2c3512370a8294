"""Synthetic identifiers that look like a hospital extract, deterministic for a seed.

They are invented (no real person), but shaped like the PHI a real extract carries, so the
sealing of identifier columns is exercised on realistic strings and dates.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FIRST_NAMES = (
    "Olivia Amelia Isla Ava Mia Sophia Grace Lily Freya Emily Ivy Ella Rosie Evie Florence "
    "Poppy Charlotte Willow Isabella Sienna Elsie Harper Alice Ruby Matilda Maya Aria Daisy "
    "Hannah Lucy Chloe Zara Nora Leah Eliza Anna Clara Maria Sarah Fatima Aisha Priya Mei "
    "Yuki Ingrid Sofia Elena Julia Laura Marta Rosa Nadia Amira Leila Esther Ruth Joan Helen"
).split()
LAST_NAMES = (
    "Smith Jones Taylor Brown Williams Wilson Johnson Davies Patel Robinson Wright Thompson "
    "Evans Walker White Roberts Green Hall Thomas Clarke Jackson Wood Harris Edwards Turner "
    "Martin Cooper Hill Ward Hughes Moore Clark King Harrison Lewis Baker Lee Allen Morris "
    "Khan Scott Watson Davis Parker James Bennett Young Phillips Richardson Mitchell Bailey "
    "Carter Cook Singh Shaw Bell Collins Morgan Kelly Begum Miller Cox Hussain Marshall"
).split()
POSTCODE_AREAS = (
    "AB B BS CB CF CM CO CT DE DN E EC EH G GL GU HP IP L LE LS M ME MK N NE NG NR NW "
    "OX PE PL PO RG S SE SO SW TN W WC YO"
).split()
_LETTERS = np.array(list("ABDEFGHJLNPQRSTUWXYZ"))


def _postcodes(rng: np.random.Generator, n: int) -> np.ndarray:
    area = np.array(POSTCODE_AREAS)[rng.integers(0, len(POSTCODE_AREAS), n)]
    district = rng.integers(1, 30, n).astype(str)
    sector = rng.integers(0, 10, n).astype(str)
    unit = _LETTERS[rng.integers(0, len(_LETTERS), n)].astype(object) + _LETTERS[
        rng.integers(0, len(_LETTERS), n)
    ].astype(object)
    return area.astype(object) + district.astype(object) + " " + sector.astype(object) + unit


def identifiers(n: int, seed: int) -> pd.DataFrame:
    """``n`` rows of patient_id, mrn, name, date_of_birth, postcode, admission_date."""
    rng = np.random.default_rng(seed)
    numbers = np.arange(1, n + 1)
    first = np.array(FIRST_NAMES)[rng.integers(0, len(FIRST_NAMES), n)].astype(object)
    last = np.array(LAST_NAMES)[rng.integers(0, len(LAST_NAMES), n)].astype(object)
    # Breast cancer patients are mostly 30 to 85 years old at admission.
    admission = np.datetime64("2024-01-01") + rng.integers(0, 730, n).astype("timedelta64[D]")
    age_days = rng.integers(30 * 365, 85 * 365, n).astype("timedelta64[D]")
    mrn_base = rng.permutation(n) + 10_000_000 + rng.integers(0, 1_000_000)
    return pd.DataFrame(
        {
            "patient_id": pd.array([f"P{i:07d}" for i in numbers], dtype="string"),
            "mrn": pd.array([f"MRN{m:08d}" for m in mrn_base], dtype="string"),
            "name": pd.array(first + " " + last, dtype="string"),
            "date_of_birth": (admission - age_days).astype("datetime64[s]"),
            "postcode": pd.array(_postcodes(rng, n), dtype="string"),
            "admission_date": admission.astype("datetime64[s]"),
        }
    )
