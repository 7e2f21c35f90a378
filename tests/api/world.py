"""A Chirp–Reelix world for the partner API: a generated population, its store, apps, an app.

Reelix's app reads Chirp data a person delegates (friend picker, message sync) and sends
recommendations on their behalf; Chirp's app reads reports, segments and (with a member's
delegation) watch activity. Both apps passed review for every permission their agreement offers
them; a third app passed none, and has one test person.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select

from accord import agreements as ag
from accord.ads.model import Advertiser, Bid, BidStrategy, Campaign, Creative, Schedule
from accord.ads.store import AdsStore
from accord.api import ApiSettings, PartnerApps, create_app
from accord.api.apps import App
from accord.scenario.generate import write_databases
from accord.scenario.population import CHIRP, REELIX, generate
from accord.service import Accord
from accord.sources import Source, load
from accord.store import tables as store_tables
from accord.store.engine import make_engine

PEOPLE, SEED = 400, 11
EXAMPLES = resources.files("accord") / "examples"
DATASETS = resources.files("accord") / "scenario" / "datasets"
REDIRECT = "http://localhost/callback"


@dataclass
class World:
    """The store, the app factory's app, the partner apps and their secrets, the parties' files."""

    accord: Accord
    app: FastAPI
    apps: PartnerApps
    reelix: App
    reelix_secret: str
    chirp: App
    chirp_secret: str
    unreviewed: App
    unreviewed_secret: str
    public: App
    files: dict[str, Path]
    sources: dict[str, Source]

    def sql(self, party: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.files[party]) as db:
            return db.execute(query, params).fetchall()


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@contextmanager
def build_world(
    folder: Path, settings: ApiSettings | None = None, database_url: str | None = None
) -> Iterator[World]:
    at = now()
    written = write_databases(folder / "parties", people=PEOPLE, seed=SEED, at=at, parallel=False)
    population = generate(PEOPLE, seed=SEED, at=at)
    files = {CHIRP: written.chirp, REELIX: written.reelix}
    engines = {party: make_engine(f"sqlite:///{path}") for party, path in files.items()}
    try:
        with Accord.open(database_url, data_dir=folder / "accord") as accord:
            # Display names, as a person reads them on the consent screens.
            accord.add_party(CHIRP, "Chirp")
            accord.add_party(REELIX, "Reelix")
            for name in ("chirp-reelix", "chirp-reelix-titan"):
                doc = (EXAMPLES / f"{name}.yaml").read_text()
                accord.register(doc, source=f"{name}.yaml", by="legal")
            accord.review("chirp-reelix", reviewer="Dana", findings="none", approved=True)
            accord.move("chirp-reelix", ag.Status.ACTIVE, by="dpo")
            accord.import_records(population.people, population.consents, population.opt_outs)
            sources = {
                party: Source(engines[party], load(str(DATASETS / f"{party}.yaml")))
                for party in (CHIRP, REELIX)
            }
            apps = PartnerApps(accord)
            reelix, reelix_secret = apps.register(
                "Reelix", party=REELIX, agreement="chirp-reelix", redirect_uris=[REDIRECT]
            )
            chirp, chirp_secret = apps.register(
                "Chirp feed", party=CHIRP, agreement="chirp-reelix", redirect_uris=[REDIRECT]
            )
            unreviewed, unreviewed_secret = apps.register(
                "Reelix beta", party=REELIX, agreement="chirp-reelix", redirect_uris=[REDIRECT]
            )
            public, _ = apps.register(
                "Reelix mobile",
                party=REELIX,
                agreement="chirp-reelix",
                redirect_uris=[REDIRECT],
                public=True,
            )
            for a in (reelix, chirp, public):
                for scope in apps.offered(a):
                    apps.review(a.client_id, scope, approved=True, reviewer="Ola", findings="ok")
            apps.add_test_person(unreviewed.client_id, "c0000001")
            assert reelix_secret
            assert chirp_secret
            assert unreviewed_secret
            app = create_app(
                accord, sources, settings or ApiSettings(), key=secrets.token_bytes(32)
            )
            yield World(
                accord,
                app,
                apps,
                reelix,
                reelix_secret,
                chirp,
                chirp_secret,
                unreviewed,
                unreviewed_secret,
                public,
                files,
                sources,
            )
    finally:
        for engine in engines.values():
            engine.dispose()


def chirp_people(accord: Accord, count: int) -> list[str]:
    """Chirp's first ``count`` people, by id (those the ads tests give an ad profile)."""
    people = store_tables.people.c
    with accord.session() as s:
        return list(
            s.execute(
                select(people.person_id)
                .where(people.party == CHIRP)
                .order_by(people.person_id)
                .limit(count)
            ).scalars()
        )


AD_DAY = datetime(2026, 6, 1, 12, tzinfo=UTC)
"""A day Chirp's ads tests show ads on (the campaign of :func:`ad_platform` runs from the day
before)."""


def ad_platform(accord: Accord, people: int = 50, *, frequency_cap: int = 3) -> list[str]:
    """Chirp's first ``people`` people with an ad profile, and one Reelix campaign any of them
    may see (a budget no test spends, a cap of ``frequency_cap`` ads a person a day)."""
    found = chirp_people(accord, people)
    store = AdsStore(accord.engine, CHIRP)
    store.set_profiles((p, "25-34", frozenset({"music"})) for p in found)
    store.add_advertiser(Advertiser("reelix", "Reelix", CHIRP, party=REELIX))
    store.add_campaign(
        Campaign(
            id=0,
            advertiser="reelix",
            name="everyone",
            daily_budget=10**12,
            schedule=Schedule(AD_DAY - timedelta(days=1)),
            bid=Bid(BidStrategy.CPM, 5_000_000),
            creatives=(Creative("ad", "Watch free for a month", "", "https://reelix.example/"),),
            frequency_cap=frequency_cap,
        )
    )
    return found


def pkce() -> tuple[str, str]:
    """A PKCE verifier and its S256 challenge (RFC 7636 section 4.2)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def when_served(send: Callable[[], httpx.Response], tries: int = 5) -> httpx.Response:
    """``send``'s answer, sent again while it is a 503 for running past the app's time, up to
    ``tries`` times in all; any other answer is returned at once.

    Tests that hold the store give each request a short time (1 or 2 s) so that the held
    requests do not hold the test long. On a shared machine a request the test does not hold can
    run past that time too, a commit waiting on a busy disk: the requests such a test sends
    before it holds the store, and after, to show the service recovered, are sent again. One
    that runs past its time every time still fails its test.
    """
    answer = send()
    for _ in range(tries - 1):
        if answer.status_code != 503 or not _timed_out(answer):
            break
        answer = send()
    return answer


def _timed_out(answer: httpx.Response) -> bool:
    if not answer.headers.get("content-type", "").startswith("application/problem+json"):
        return "did not finish within" in answer.text  # a page's
    problem = answer.json()
    return isinstance(problem, dict) and str(problem.get("type", "")).endswith(":timed-out")


def app_token(client: httpx.Client, app: App, secret: str, scope: str | None = None) -> str:
    """A client-credentials token for ``app``, asked for again while late (``when_served``)."""
    data = {"grant_type": "client_credentials"}
    if scope is not None:
        data["scope"] = scope
    r = when_served(lambda: client.post("/oauth/token", data=data, auth=(app.client_id, secret)))
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def consent(
    client: httpx.Client,
    app: App,
    person: str,
    scopes: list[str],
    allow: list[str] | None = None,
    *,
    months: int = 12,
    headers: dict[str, str] | None = None,
) -> dict[str, list[str]]:
    """Run the consent screens as ``person`` would, allowing ``allow`` (default: all asked)."""
    verifier, challenge = pkce()
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": REDIRECT,
        "scope": " ".join(scopes),
        "state": "xyz",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    r = client.get("/oauth/authorize", params=params, headers=headers)
    if r.status_code == 303:
        target = r.headers["location"]
        nxt = parse_qs(urlsplit(target).query)["next"][0]
        r = client.post("/login", data={"person": person, "next": nxt})
        assert r.status_code == 303, r.text
        r = client.get(r.headers["location"], headers=headers)
    assert r.status_code == 200, r.text
    pending = _hidden(r.text, "pending")
    chosen = scopes if allow is None else allow
    plain = [s for s in chosen if "media_consumption" not in s]
    r = client.post(
        "/oauth/authorize/consent",
        data={"pending": pending, "action": "allow", "scope": plain},
        headers=headers,
    )
    if r.status_code == 200 and "/oauth/authorize/vppa" in r.text:
        viewing = [s for s in chosen if "media_consumption" in s]
        r = client.post(
            "/oauth/authorize/vppa",
            data={
                "pending": _hidden(r.text, "pending"),
                "months": str(months),
                "action": "allow" if viewing else "deny",
                "scope": viewing,
            },
        )
    assert r.status_code == 302, r.text
    query = parse_qs(urlsplit(r.headers["location"]).query)
    query["verifier"] = [verifier]
    return query


def _hidden(html: str, name: str) -> str:
    marker = f'name="{name}" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def delegated_token(
    client: httpx.Client, app: App, secret: str | None, person: str, scopes: list[str], **kw: Any
) -> str:
    """A token ``person`` authorized for ``app`` through the consent screens."""
    got = consent(client, app, person, scopes, **kw)
    data = {
        "grant_type": "authorization_code",
        "code": got["code"][0],
        "redirect_uri": REDIRECT,
        "code_verifier": got["verifier"][0],
    }
    if secret is None:
        data["client_id"] = app.client_id
        r = client.post("/oauth/token", data=data)
    else:
        r = client.post("/oauth/token", data=data, auth=(app.client_id, secret))
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on an ephemeral loopback port in a thread; yields its URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def browse(http: httpx.Client, url: str, person: str, allow: list[str]) -> str:
    """A person's browser: sign in, tick ``allow`` on the consent screen; the redirect it gets."""
    r = http.get(url)
    if r.status_code == 303:
        nxt = parse_qs(urlsplit(r.headers["location"]).query)["next"][0]
        r = http.post("/login", data={"person": person, "next": nxt})
        r = http.get(r.headers["location"])
    assert r.status_code == 200, r.text
    marker = 'name="pending" value="'
    start = r.text.index(marker) + len(marker)
    pending = r.text[start : r.text.index('"', start)]
    r = http.post(
        "/oauth/authorize/consent", data={"pending": pending, "action": "allow", "scope": allow}
    )
    assert r.status_code == 302, r.text
    return str(r.headers["location"])
