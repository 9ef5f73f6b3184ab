"""Checks the Elasticsearch emulator with the official python client (an independent client).

Usage: python3 es_check.py <emulator url>

Expects the dataset of `ElasticEmulator::seed_sample_alerts()` (see its doc table): alerts a-1..a-6
in `.internal.alerts-security.alerts-default-000001` behind the alias
`.alerts-security.alerts-default`. Exits non-zero with a message on the first failed assertion.
"""

import sys

from elasticsearch import BadRequestError, Elasticsearch, NotFoundError

INDEX = ".internal.alerts-security.alerts-default-000001"
ALIAS = ".alerts-security.alerts-default"


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def ids(resp):
    return [h["_id"] for h in resp["hits"]["hits"]]


def main():
    url = sys.argv[1]
    es = Elasticsearch(url, request_timeout=10)

    info = es.info()
    check(info["version"]["number"].startswith("9."), f"info() reports a 9.x server: {info['version']['number']}")
    check(info["tagline"] == "You Know, for Search", "info() tagline")

    # The poller's query: critical alerts since a checkpoint, oldest first, uuid tie-breaker.
    query = {
        "bool": {
            "filter": [
                {"term": {"kibana.alert.severity": "critical"}},
                {"range": {"@timestamp": {"gte": "2025-03-04T10:00:00.000Z"}}},
            ]
        }
    }
    sort = [{"@timestamp": {"order": "asc"}}, {"kibana.alert.uuid": "asc"}]
    seen, pages, after = [], 0, None
    while True:
        kwargs = {"index": ALIAS, "query": query, "sort": sort, "size": 2}
        if after is not None:
            kwargs["search_after"] = after
        resp = es.search(**kwargs)
        check(resp["hits"]["total"] == {"value": 4, "relation": "eq"}, f"page {pages}: total counts every match")
        hits = resp["hits"]["hits"]
        if not hits:
            break
        for h in hits:
            check(h["_index"] == INDEX, f"{h['_id']}: _index is the concrete backing index")
            check(isinstance(h["sort"][0], int), f"{h['_id']}: date sort value is epoch millis ({h['sort'][0]})")
            check(h["_source"]["kibana.alert.uuid"] == h["_id"], f"{h['_id']}: dotted key kept in _source")
        seen.extend(ids(resp))
        after = hits[-1]["sort"]
        pages += 1
    check(seen == ["a-1", "a-3", "a-4", "a-5"], f"search_after paging returns every match once, in order: {seen}")
    check(pages == 2, f"two pages of size 2 ({pages})")

    # 2025-03-04T10:02:00Z in epoch millis: a-3 and a-4 tie on time, the uuid breaks it.
    resp = es.search(index=ALIAS, query=query, sort=sort, size=10, search_after=[1741082520000, "a-3"])
    check(ids(resp) == ["a-4", "a-5"], f"search_after inside a timestamp tie: {ids(resp)}")

    resp = es.search(
        index=".alerts-security.alerts-*",
        query={"bool": {"must_not": [{"term": {"kibana.alert.severity": "critical"}}]}},
        sort=[{"@timestamp": "desc"}],
    )
    check(ids(resp) == ["a-2"], f"wildcard pattern over the alias + must_not: {ids(resp)}")

    resp = es.search(index=ALIAS, query={"term": {"host.name": "WS-FIN-003"}})
    check(ids(resp) == ["a-3"], "term on a nested field (host.name)")

    resp = es.search(index=ALIAS, query={"terms": {"host.ip": ["10.20.4.42"]}}, size=0)
    check(resp["hits"]["total"]["value"] == 6 and resp["hits"]["hits"] == [], "terms on an array field, size 0")

    resp = es.search(index="no-such-index-*", query={"match_all": {}})
    check(resp["hits"]["total"]["value"] == 0, "a pattern matching nothing is an empty result")

    try:
        es.search(index="no-such-index", query={"match_all": {}})
        check(False, "a missing concrete index raises NotFoundError")
    except NotFoundError as e:
        check(e.status_code == 404 and e.error == "index_not_found_exception", f"missing index: {e.error}")

    try:
        es.search(index=ALIAS, query={"no_such_query": {}})
        check(False, "an unknown query raises BadRequestError")
    except BadRequestError as e:
        check(e.status_code == 400 and e.error == "parsing_exception", f"unknown query: {e.error}")

    print("es_check: all good")


if __name__ == "__main__":
    main()
