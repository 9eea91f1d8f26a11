"""Every mutating call leaves an audit record in its own transaction; failed calls leave none."""

from __future__ import annotations

from helpers import call, call_error


async def test_mutations_are_audited_with_actor_arguments_and_ids(client):
    await call(client, "create_customer", id="c1", name="Acme", account={"id": "a1", "name": "Main"})
    await call(client, "update_account", accountId="a1", name="Renamed")
    await call(client, "get_account", accountId="a1")  # reads are not audited
    await call_error(client, "update_account", accountId="missing", name="X")  # failed: no record
    log = await call(client, "list_audit_log")
    records = log["data"]
    assert [r["tool"] for r in records] == ["update_account", "create_customer"]
    assert all(r["actor"] == "local" for r in records)
    assert records[1]["changedIds"] == ["c1", "a1"]
    assert records[1]["arguments"]["account"] == {"id": "a1", "name": "Main"}
    assert records[0]["arguments"] == {"accountId": "a1", "name": "Renamed"} | {
        k: v for k, v in records[0]["arguments"].items() if v is None
    }
    by_entity = await call(client, "list_audit_log", entityId="a1")
    assert len(by_entity["data"]) == 2
    only_updates = await call(client, "list_audit_log", tool="update_account")
    assert [r["tool"] for r in only_updates["data"]] == ["update_account"]


async def test_secrets_are_redacted():
    from togai_engine.audit.service import redact

    assert redact({"name": "n", "apiKey": "tge_x", "nested": [{"token": "t", "ok": 1}]}) == {
        "name": "n", "apiKey": "[redacted]", "nested": [{"token": "[redacted]", "ok": 1}]
    }


async def test_a_batch_is_audited_as_a_summary_and_a_nul_rejects_only_its_event(client):
    await call(client, "create_customer", id="c1", name="Acme", account={"id": "a1", "name": "Main"})
    events = [{"id": f"e{i}", "schemaName": "api", "timestamp": "2026-01-01T00:00:00Z", "accountId": "a1",
               "attributes": {"n": "1"}} for i in range(3)]
    events[1]["dimensions"] = {"bad": "nul\x00here"}
    result = await call(client, "ingest_batch_events", events=events)
    assert (result["notBilledNoPlan"], result["rejected"]) == (2, 1)  # stored; a1 has no price plan
    assert result["rejectedEvents"][0]["index"] == 1
    record = (await call(client, "list_audit_log", tool="ingest_batch_events"))["data"][0]
    assert record["arguments"] == {"eventCount": 3, "accountIds": ["a1"], "accountCount": 1,
                                   "firstEventId": "e0", "lastEventId": "e2"}


async def test_ingested_events_are_found_in_the_audit_log_by_their_account(client):
    # list_audit_log(entityId=account) finds the calls that took the account's usage: ingest_event records the
    # account with the event, a batch the accounts of the events it took (not every event id: it holds up to 1000)
    for n in (1, 2):
        await call(client, "create_customer", id=f"c{n}", name=f"C{n}", account={
            "id": f"a{n}", "name": f"A{n}", "aliases": [f"alias{n}"]})
    await call(client, "ingest_event", event={"id": "one", "schemaName": "api", "timestamp": "2026-01-01T00:00:00Z",
                                              "accountId": "alias1"})
    events = [{"id": f"e{i}", "schemaName": "api", "timestamp": "2026-01-01T00:00:00Z", "accountId": account}
              for i, account in enumerate(["alias2", "a1", "a2", "nobody"])]
    result = await call(client, "ingest_batch_events", events=events)
    assert (result["notBilledNoPlan"], result["rejected"]) == (3, 1)  # stored, no plan; nobody is unknown
    [batch] = (await call(client, "list_audit_log", tool="ingest_batch_events"))["data"]
    assert batch["changedIds"] == ["a1", "a2"]  # the account ids, aliases resolved; the rejected event's none
    [single] = (await call(client, "list_audit_log", tool="ingest_event"))["data"]
    assert single["changedIds"] == ["a1", "one"]
    assert [r["tool"] for r in (await call(client, "list_audit_log", entityId="a2"))["data"]] == [
        "ingest_batch_events", "create_customer"]
    assert [r["tool"] for r in (await call(client, "list_audit_log", entityId="a1"))["data"]] == [
        "ingest_batch_events", "ingest_event", "create_customer"]


async def test_a_page_token_is_refused_under_other_filters(client):
    # a token is a position in one filtered list: under other filters it would page from a wrong point
    for n in range(3):
        await call(client, "create_customer", id=f"c{n}", name=f"C{n}")
    await call(client, "update_customer", customerId="c0", name="Renamed")
    first = await call(client, "list_audit_log", tool="create_customer", pageSize=1)
    assert [r["changedIds"] for r in first["data"]] == [["c2"]]
    following = await call(client, "list_audit_log", tool="create_customer", pageSize=1, nextToken=first["nextToken"])
    assert [r["changedIds"] for r in following["data"]] == [["c1"]]
    for other in ({}, {"tool": "update_customer"}, {"tool": "create_customer", "entityId": "c0"},
                  {"tool": "create_customer", "actor": "local"}):
        message = await call_error(client, "list_audit_log", pageSize=1, nextToken=first["nextToken"], **other)
        assert "nextToken" in message and "is not a token this server issued for this list" in message, other


async def test_an_attribute_named_like_a_secret_is_redacted_in_either_form(client):
    # {name: value} and [{name, value, unit}] are one attribute written two ways: redacted alike
    await call(client, "create_customer", id="c1", name="Acme", account={"id": "a1", "name": "Main"})
    for n, attributes in enumerate(({"token": "7", "n": "1"},
                                    [{"name": "token", "value": "7", "unit": "x"}, {"name": "n", "value": "1"}])):
        await call(client, "ingest_event", event={"id": f"e{n}", "schemaName": "api", "accountId": "a1",
                                                  "timestamp": "2026-01-01T00:00:00Z", "attributes": attributes})
    as_dict, as_list = reversed((await call(client, "list_audit_log", tool="ingest_event"))["data"])
    assert as_dict["arguments"]["event"]["attributes"] == {"token": "[redacted]", "n": "1"}
    assert as_list["arguments"]["event"]["attributes"] == [{"name": "token", "value": "[redacted]", "unit": "x"},
                                                          {"name": "n", "value": "1"}]
