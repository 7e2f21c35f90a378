"""A small Python client for Accord's partner API.

    with AccordClient.for_app(url, client_id, secret) as api:      # client credentials
        report = api.recommendation_report(group_by=["interface"])
    with AccordClient(url, token=person_token) as api:             # a person's delegated token
        friends = api.friends("c0000042")

The flow helpers name the clauses of the example Chirp–Reelix agreement; :meth:`exchange` runs
any clause of any agreement. Errors come back as RFC 9457 problem documents and are raised as
:class:`ApiProblem`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from accord.errors import AccordError

EXAMPLE_AGREEMENT = "chirp-reelix"
FUNCTIONAL = "functional.service"


class ApiProblem(AccordError):
    """An error response from the API, with its problem document (RFC 9457)."""

    def __init__(self, status: int, problem: Mapping[str, Any]) -> None:
        self.status = status
        self.problem = dict(problem)
        super().__init__(str(problem.get("detail") or problem.get("title") or status))

    @property
    def rules(self) -> list[str]:
        """The rules that refused the request, if any."""
        return list(self.problem.get("rules") or [])


class AccordClient:
    """Calls the partner API with one bearer token."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        agreement: str = EXAMPLE_AGREEMENT,
        http: httpx.Client | None = None,
    ) -> None:
        self.agreement = agreement
        self._http = http or httpx.Client(base_url=base_url, timeout=30)
        self._own = http is None
        self.token = token

    @classmethod
    def for_app(
        cls,
        base_url: str,
        client_id: str,
        secret: str,
        scope: str | None = None,
        **kwargs: Any,
    ) -> AccordClient:
        """A client holding a client-credentials token for the app itself (RFC 6749 4.4)."""
        client = cls(base_url, **kwargs)
        data = {"grant_type": "client_credentials"}
        if scope:
            data["scope"] = scope
        body = client._call("POST", "/oauth/token", data=data, auth=(client_id, secret))
        client.token = str(body["access_token"])
        return client

    def close(self) -> None:
        """Close the connection pool (if this client opened it)."""
        if self._own:
            self._http.close()

    def __enter__(self) -> AccordClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = self._http.request(method, path, headers=headers, **kwargs)
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"title": response.reason_phrase, "detail": response.text[:500]}
            raise ApiProblem(response.status_code, problem)
        return response.json()

    # -- the API -------------------------------------------------------------------------------

    def exchange(self, clause: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Run one exchange under ``clause`` of the client's agreement."""
        path = f"/v1/agreements/{self.agreement}/clauses/{clause}/exchanges"
        result: dict[str, Any] = self._call("POST", path, json=dict(body))
        return result

    def app(self) -> dict[str, Any]:
        """The calling app, its offered and approved permissions, and the token's."""
        result: dict[str, Any] = self._call("GET", "/v1/app")
        return result

    def permissions(self) -> list[dict[str, Any]]:
        """The permissions the token's person granted the app."""
        result: list[dict[str, Any]] = self._call("GET", "/v1/me/permissions")
        return result

    def revoke(self, scope: str | None = None) -> int:
        """Revoke one permission (or, with no scope, all of them: remove the app)."""
        path = "/v1/me/permissions" + (f"/{scope}" if scope else "")
        return int(self._call("DELETE", path)["revoked"])

    def erase(self, person: str, known_as: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Erase a person the app's party holds (the app's own token): what was done."""
        body = {"known_as": dict(known_as)} if known_as else None
        result: dict[str, Any] = self._call(
            "POST", f"/v1/people/{quote(person, safe='')}/erasure", json=body
        )
        return result

    def erasure_notices(self) -> list[dict[str, Any]]:
        """People erased by a provider whose data the app's party received (the app's own
        token)."""
        result: list[dict[str, Any]] = self._call("GET", "/v1/erasure-notices")
        return result

    def acknowledge(self, notice: str) -> None:
        """The app's party has erased the person of ``notice`` too; the notice stops naming
        them and the person's erasure page shows the acknowledgement."""
        self._call("POST", f"/v1/erasure-notices/{quote(notice, safe='')}/acknowledgement")

    # -- the example agreement's flows ---------------------------------------------------------

    def friends(self, person: str) -> list[str]:
        """The friends of ``person`` who agreed to be shown (friend picker; a person's token)."""
        release = self.exchange(
            "friend-picker",
            {
                "collection": "friendships",
                "purpose": FUNCTIONAL,
                "categories": ["user.social"],
                "subjects": {"kind": "friends_of", "anchor": person},
                "where": {"person_id": person},
            },
        )
        return [str(row[0]) for row in release["rows"]]

    def messages(self, person: str) -> dict[str, Any]:
        """Messages in ``person``'s threads where every participant agreed (message sync)."""
        return self.exchange(
            "message-sync",
            {
                "collection": "messages",
                "purpose": FUNCTIONAL,
                "categories": ["user.content.private"],
                "subjects": {"kind": "threads_of", "anchor": person},
            },
        )

    def send_recommendation(
        self, person: str, thread_id: Any, body: str, sent_at: str
    ) -> dict[str, Any]:
        """Send a title recommendation as a message on ``person``'s behalf."""
        return self.exchange(
            "send-recommendation",
            {
                "collection": "messages",
                "operation": "write",
                "purpose": FUNCTIONAL,
                "categories": ["user.content.private"],
                "subjects": {"kind": "people", "people": [person]},
                "rows": [
                    {
                        "thread_id": thread_id,
                        "body": body,
                        "sender_id": person,
                        "sent_at": sent_at,
                        "sent_via": "reelix",
                    }
                ],
            },
        )

    def watch_activity(self, person: str | None = None, title: str | None = None) -> dict[str, Any]:
        """What members who consented (under the VPPA in the US) watched: one, or all."""
        body: dict[str, Any] = {
            "collection": "watch_events",
            "purpose": FUNCTIONAL,
            "categories": ["user.behavior.media_consumption"],
        }
        if person is not None:
            body["subjects"] = {"kind": "people", "people": [person]}
        if title is not None:
            body["title"] = title
            body["where"] = {"title_id": title}
        return self.exchange("watch-activity", body)

    def interest_segments(self) -> dict[str, Any]:
        """Titles watched by members who consented to ad targeting and did not opt out."""
        return self.exchange(
            "interest-segments",
            {
                "collection": "watch_events",
                "purpose": "marketing.advertising.third_party.targeted",
                "categories": ["user.behavior.media_consumption"],
            },
        )

    def recommendation_report(
        self,
        group_by: Sequence[str] = ("day(sent_at)", "interface", "surface", "variant"),
        measures: Mapping[str, str] | None = None,
        *,
        epsilon: float | None = None,
    ) -> dict[str, Any]:
        """Counts of recommendation sends and clicks, noised with differential privacy: the
        clause has a privacy budget, and each report spends ``epsilon`` of it (a tenth by
        default); which groups show is chosen with noise too. Its ``noise`` says how."""
        body: dict[str, Any] = {
            "collection": "recommendations",
            "purpose": "analytics.reporting.content_performance",
            "categories": ["user.behavior"],
            "group_by": list(group_by),
            "measures": dict(measures or {"sends": "count", "clicks": "count(clicked_at)"}),
        }
        if epsilon is not None:
            body["epsilon"] = epsilon
        return self.exchange("recommendation-report", body)

    def linked_account(self, member: str) -> dict[str, Any]:
        """The Chirp account a Reelix member linked."""
        return self.exchange(
            "account-link",
            {
                "collection": "linked_accounts",
                "purpose": "essential.service.authentication",
                "categories": ["user.account.linked"],
                "subjects": {"kind": "people", "people": [member]},
            },
        )
