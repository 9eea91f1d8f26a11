import json
from helpers import at, call, call_error

async def test_dump(client, clock):
    print(await call_error(client, "list_invoices", accountId="nope"))
    for name in ("USAGE", "REVENUE", "EVENTS"):
        for q in ({"filters": [{"fieldName": "ACCOUNT_ID", "fieldValues": ["nope"]}]}, {"groupBy": "ACCOUNT_ID"}, {}):
            r = await client.call_tool("get_metrics", {"startTime": "2026-01-01", "endTime": "2026-01-03", "metricQueries": [{"id": "q", "name": name, **q}]})
            print(name, q, r.is_error, json.dumps(r.structured_content) if not r.is_error else r.content[0].text)
