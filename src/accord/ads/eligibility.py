"""Which campaigns may take part in an auction for a person: targeting as NumPy masks.

:class:`CandidateIndex` holds every campaign's targeting as arrays over the campaigns (in
campaign id order, the auction's tie-break order). For a person it gives one boolean mask, the
campaigns whose targeting reaches them, computed with a few array operations and remembered for
every person with the same signals:

* place: the person's jurisdiction or its country among the campaign's regions (a boolean matrix
  of campaigns × places named by any campaign), or the campaign names no region;
* age band: a boolean matrix of campaigns × bands;
* interests: any of the campaign's, as 64-bit masks (``mask & person != 0``), or none named;
* audiences: the person in any audience the campaign includes, in none it excludes;
* profiling and minors: interests and audiences never reach a person under 18 (EU Digital
  Services Act, Art. 28(2));
* opt-out of sale and sharing: every campaign that uses partner data — that names an audience
  built from another party's data, to include or exclude — is left out for a person with an
  opt-out in force (:mod:`accord.law.optout`: every place, every marketing purpose).

What changes from one request to the next (schedule, budgets, frequency caps, pacing) is applied
by :mod:`accord.ads.market` on top of this mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from accord.ads.model import AGE_BANDS, MAX_INTERESTS, MINORS, Campaign, PersonSignals
from accord.errors import InvalidInput
from accord.jurisdictions import country

Mask = npt.NDArray[np.bool_]

CACHE_LIMIT = 65_536
"""Signals whose masks are remembered; the memory is emptied when it holds this many."""

_AGE = {band: n for n, band in enumerate(AGE_BANDS)}


class CandidateIndex:
    """Every campaign's targeting, as arrays in campaign id order."""

    def __init__(self, campaigns: Sequence[Campaign]) -> None:
        ordered = sorted(campaigns, key=lambda c: c.id)
        ids = [c.id for c in ordered]
        if len(set(ids)) != len(ids):
            raise InvalidInput("two campaigns share an id", where="candidate index")
        self.campaigns: tuple[Campaign, ...] = tuple(ordered)
        n = len(ordered)
        self.size = n
        self.position = {c.id: i for i, c in enumerate(ordered)}
        self.partner = np.array([c.partner_data for c in ordered], dtype=bool)
        self.profiling = np.array([c.targeting.profiling for c in ordered], dtype=bool)

        # Places: a column per place any campaign names; a campaign naming none reaches all.
        everywhere = [c.targeting.places.everywhere for c in ordered]
        named = sorted(
            {p for c in ordered for p in c.targeting.places.countries}
            | {p for c in ordered for p in c.targeting.places.subdivisions}
        )
        self._place_column = {place: n for n, place in enumerate(named)}
        places = np.zeros((n, len(named)), dtype=bool)
        for row, c in enumerate(ordered):
            for place in c.targeting.places.countries | c.targeting.places.subdivisions:
                places[row, self._place_column[place]] = True
        self._places_t = np.ascontiguousarray(places.T)
        self._anywhere = np.array(everywhere, dtype=bool)
        # Regions with exceptions ("everywhere but") are judged campaign by campaign; none of
        # the targeting Accord builds has them, so the list is normally empty.
        self._excepting = [
            i
            for i, c in enumerate(ordered)
            if c.targeting.places.everywhere
            and (c.targeting.places.except_countries or c.targeting.places.except_subdivisions)
        ]

        ages = np.ones((len(AGE_BANDS), n), dtype=bool)
        for row, c in enumerate(ordered):
            if c.targeting.age_bands:
                ages[:, row] = [band in c.targeting.age_bands for band in AGE_BANDS]
        self._ages = ages

        vocabulary = sorted({i for c in ordered for i in c.targeting.interests})
        if len(vocabulary) > MAX_INTERESTS:
            raise InvalidInput(
                f"campaigns name {len(vocabulary)} interests; at most {MAX_INTERESTS} are indexed",
                where="candidate index",
            )
        self._interest_bit = {
            name: np.uint64(1) << np.uint64(n) for n, name in enumerate(vocabulary)
        }
        masks = np.zeros(n, dtype=np.uint64)
        for row, c in enumerate(ordered):
            for name in c.targeting.interests:
                masks[row] |= self._interest_bit[name]
        self._interests = masks
        self._any_interest = masks == 0

        self._includes: dict[str, list[int]] = {}
        self._excludes: dict[str, list[int]] = {}
        for row, c in enumerate(ordered):
            for audience in c.targeting.audiences:
                self._includes.setdefault(audience, []).append(row)
            for audience in c.targeting.excluded_audiences:
                self._excludes.setdefault(audience, []).append(row)
        self._any_audience = np.array([not c.targeting.audiences for c in ordered], dtype=bool)
        self._cache: dict[tuple[object, ...], Mask] = {}

    def targets(self, person: PersonSignals) -> Mask:
        """The campaigns whose targeting reaches ``person`` (read-only; do not modify)."""
        signature = (
            person.jurisdiction,
            person.age_band,
            person.interests,
            person.audiences,
            person.opted_out,
        )
        found = self._cache.get(signature)
        if found is None:
            found = self._targets(person)
            found.flags.writeable = False
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            self._cache[signature] = found
        return found

    def _targets(self, person: PersonSignals) -> Mask:
        mask = self._anywhere.copy()
        for place in (person.jurisdiction, country(person.jurisdiction)):
            column = self._place_column.get(place)
            if column is not None:
                mask |= self._places_t[column]
        for row in self._excepting:
            mask[row] = self.campaigns[row].targeting.places.contains(person.jurisdiction)
        mask &= self._ages[_AGE[person.age_band]]
        bits = np.uint64(0)
        for name in person.interests:
            bits |= self._interest_bit.get(name, np.uint64(0))
        mask &= self._any_interest | ((self._interests & bits) != 0)
        included = self._any_audience.copy()
        for audience in person.audiences:
            rows = self._includes.get(audience)
            if rows:
                included[rows] = True
            rows = self._excludes.get(audience)
            if rows:
                mask[rows] = False
        mask &= included
        if person.age_band == MINORS:
            mask &= ~self.profiling
        if person.opted_out:
            mask &= ~self.partner
        return mask


__all__ = ["CACHE_LIMIT", "CandidateIndex", "Mask"]
