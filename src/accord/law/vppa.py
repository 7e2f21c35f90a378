"""Video Privacy Protection Act, 18 U.S.C. 2710, as amended by Pub. L. 112-258 (10 January 2013).

18 U.S.C. 2710(b)(2)(B): a video tape service provider may disclose personally identifiable
information concerning any consumer "to any person with the informed, written consent (including
through an electronic means using the Internet) of the consumer that—
  (i) is in a form distinct and separate from any form setting forth other legal or financial
      obligations of the consumer;
  (ii) at the election of the consumer—
      (I) is given at the time the disclosure is sought; or
      (II) is given in advance for a set period of time, not to exceed 2 years or until consent is
           withdrawn by the consumer, whichever is sooner; and
  (iii) the video tape service provider has provided an opportunity, in a clear and conspicuous
        manner, for the consumer to withdraw on a case-by-case basis or to withdraw from ongoing
        disclosures, at the consumer's election."

18 U.S.C. 2710(a)(3): "personally identifiable information" includes information which
identifies a person as having requested or obtained specific video materials. Counts over groups
no smaller than a clause's minimum identify nobody, so aggregate clauses need no VPPA consent.

Accord reads this as: viewing data (``user.behavior.media_consumption``) about a person in the
United States reaches a recipient only under a consent record that is distinct and separate,
is in force, was given less than two years before the disclosure (whatever expiry it states),
does not exclude the title (case-by-case withdrawal), and, if given for one disclosure, is for
this one and was not relied on by an earlier release. Where rows carry their title, each row is
judged for its own title, whether or not the request names one (:mod:`accord.store.title_sql`).
"""

from __future__ import annotations

from datetime import datetime

from accord.consent import Consent, Scope, add_years
from accord.filters import ConsentNeed, Rule
from accord.jurisdictions import Jurisdictions
from accord.law import Disclosure
from accord.taxonomy import MEDIA_CONSUMPTION, covered_by_any, covers

CITATION = "18 U.S.C. 2710(b)(2)(B)"
APPLIES_TO = Jurisdictions.of(["US"])
MAX_ADVANCE_YEARS = 2
RULE_ID = "law:vppa.consent"


def person_rules(d: Disclosure) -> tuple[Rule, ...]:
    """The VPPA consent each US person needs before their viewing data moves."""
    if d.aggregate or not d.touches(MEDIA_CONSUMPTION):
        return ()
    return tuple(
        Rule(
            id=RULE_ID,
            reason=(
                "lives in the US and has no VPPA consent in force for this recipient and title: "
                f"{CITATION} needs a distinct and separate consent, given at the time or in "
                "advance for at most two years"
            ),
            requirement=ConsentNeed(
                recipient=d.counterparty,
                purpose=d.purpose,
                category=category,
                operation=d.operation,
                distinct_and_separate=True,
                max_years=MAX_ADVANCE_YEARS,
                title=d.title,
            ),
            applies_to=APPLIES_TO,
        )
        for category in d.touched(MEDIA_CONSUMPTION)
    )


def covers_viewing(consent: Consent) -> bool:
    """Whether ``consent`` covers some of what a person watched (a category at, above or below
    ``user.behavior.media_consumption``)."""
    return any(
        covers(category, MEDIA_CONSUMPTION) or covers(MEDIA_CONSUMPTION, category)
        for category in consent.categories
    )


def only_viewing(consent: Consent) -> bool:
    """Whether every category of ``consent`` is what a person watched."""
    return all(covered_by_any(category, {MEDIA_CONSUMPTION}) for category in consent.categories)


def advance_limit(consent: Consent, lives_in: str | None) -> datetime | None:
    """When ``consent`` stops counting for disclosing what a US viewer watched: two years after it
    was given in advance, whatever expiry it states (2710(b)(2)(B)(ii)(II)).

    ``None`` where no such limit binds it: a person who lives outside the US (or whose home is
    unknown), a consent that covers no viewing data, or one given for one disclosure at the time
    it is sought (2710(b)(2)(B)(ii)(I)).
    """
    if lives_in is None or not APPLIES_TO.contains(lives_in):
        return None
    if consent.scope is not Scope.ONGOING or not covers_viewing(consent):
        return None
    return add_years(consent.given_at, MAX_ADVANCE_YEARS)
