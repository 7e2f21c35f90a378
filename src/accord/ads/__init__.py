"""The ad platform of the party whose people see the ads (in the reference scenario, Chirp).

Advertisers buy campaigns; each ad request for a person runs an auction among the campaigns whose
targeting, schedule, budget, frequency cap and the person's opt-outs let them take part; budgets
are paced through the day; every charge is an append-only spend record, invoiced monthly and
summed per campaign per day into the ledger. See ``docs/ads.md``.

    model        advertisers, campaigns, targeting, schedules, bids, money (pure)
    eligibility  which campaigns may take part in an auction for a person (NumPy masks)
    auction      generalised second price (or first price) over the eligible set (NumPy)
    pacing       budgets: daily, monthly and lifetime limits; probabilistic throttling
    market       one ad request: eligibility, pacing, auction, charges
    clicks       a click model with known probabilities (the simulated world's truth)
    spend        spend records, monthly invoices, per-campaign-day ledger entries
    tables       the store's ads tables
    store        reading and writing them
    simulate     a simulated campaign season; a season replayed on the market alone
    training     what a click model may be trained on: consent snapshot, people, matrix
    ranking      the click model: LightGBM, calibrated, sharded for forgetting (SISA)
    cards        model cards, the ledger's ``model_card`` entries
    value        a second season ranked with and without partner features
    learn        training on the store's recorded impressions
    cli          ``accord ads``
"""
