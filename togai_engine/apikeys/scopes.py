"""Every scope a tool can require; `*` grants all of them."""

SCOPES: dict[str, str] = {
    "customers:read": "read customers and accounts",
    "customers:write": "create and change customers and accounts (and attach plans)",
    "events:write": "ingest usage events and void them",
    "events:read": "list raw events and event schemas",
    "meters:write": "create usage meters",
    "meters:read": "list usage meters",
    "metrics:read": "query EVENTS / USAGE / REVENUE metrics",
    "plans:write": "create price plans",
    "plans:read": "read price plans and rate cards, and price given usage under them (pricing lab quotes)",
    "billing:read": "invoices, credit notes, wallet balances and account finances (with plans:read: the pricing "
                    "lab's answers about accounts, calculate_revenue with accountId and simulate_price_plan)",
    "billing:write": "change invoice status (PAID, VOID) and issue credit notes",
    "credits:write": "grant wallet credit",
    "licenses:write": "change accounts' seat counts (update_license)",
    "entitlements:read": "check feature entitlements",
    "audit:read": "read the audit log",
    "clock:read": "read a sandbox server's clock",
    "clock:write": "advance a sandbox server's clock (bills what came due in between)",
}
